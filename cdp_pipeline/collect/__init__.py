"""The event endpoint: the Segment HTTP tracking API, landing events for the nightly ingest.

Start it with ``python -m cdp_pipeline.collect.server`` (or ``serve()``); see
docs/event_endpoint.md.
"""
