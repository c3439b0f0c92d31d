"""The marketer web app: profiles, merges, review queue, segments, syncs, privacy (docs/ui.md)."""

from cdp_pipeline.ui.auth import ROLES, create_user

__all__ = ["ROLES", "create_user"]
