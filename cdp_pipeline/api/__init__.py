"""The profile API for the website and the app (read-only, per-key scopes)."""
