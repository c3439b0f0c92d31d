"""Privacy by construction: erasure with tombstones, access exports, retention, inventory.

See docs/privacy.md. ``definitions`` exposes the Dagster assets (group "privacy");
``inventory`` lists every table holding personal data and how a person's rows are found;
``erasure`` removes a person from every layer; ``access`` answers access requests.
"""
