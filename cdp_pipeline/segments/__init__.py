"""Segment bookkeeping on top of the dbt segment models."""
