"""Pairwise precision and recall of a clustering against known true persons."""

from collections import Counter
from collections.abc import Hashable, Mapping


def _pairs_within(groups: Counter) -> int:
    return sum(n * (n - 1) // 2 for n in groups.values())


def pairwise_scores(
    predicted: Mapping[str, Hashable], truth: Mapping[str, Hashable]
) -> tuple[float, float, float]:
    """Precision, recall and F1 over record pairs put together (records in both maps).

    A pair is predicted when both records share a cluster and true when both
    share a person. Counting uses cluster × person contingency sizes, so it is
    linear in the number of records. With no predicted (or no true) pairs the
    precision (or recall) is 1.0 by convention.
    """
    ids = [record_id for record_id in predicted if record_id in truth]
    joint = Counter((predicted[r], truth[r]) for r in ids)
    true_positive = _pairs_within(joint)
    predicted_pairs = _pairs_within(Counter(predicted[r] for r in ids))
    true_pairs = _pairs_within(Counter(truth[r] for r in ids))
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
