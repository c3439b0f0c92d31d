"""Identity resolution: source records → stable profiles (see docs/architecture.md)."""

from cdp_pipeline.identity.config import MatchingConfig, load_config, parse_config
from cdp_pipeline.identity.decisions import append_decision, mark_different, mark_same
from cdp_pipeline.identity.evaluation import pairwise_scores
from cdp_pipeline.identity.resolve import ResolutionStats, resolve
from cdp_pipeline.identity.review import decide_pair, explain_profile, review_queue

__all__ = [
    "MatchingConfig",
    "ResolutionStats",
    "append_decision",
    "decide_pair",
    "explain_profile",
    "load_config",
    "mark_different",
    "mark_same",
    "pairwise_scores",
    "parse_config",
    "resolve",
    "review_queue",
]
