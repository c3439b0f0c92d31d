"""Synthetic exports of the city's first-party sources, with the true person of each record.

``generate`` writes one delivery of every source described in ``sources.md`` into a
landing folder, in the exact formats and with the quirks of the real exports, and the
ground truth under ``_truth/`` that identity resolution is scored against.
"""

from cdp_pipeline.sample_data.generator import DEFAULT_AS_OF, generate

__all__ = ["DEFAULT_AS_OF", "generate"]
