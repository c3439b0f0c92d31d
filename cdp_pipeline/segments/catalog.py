"""Names the segment compiler and the Dagster definitions need, without the ML libraries.

The automatic segment slots and the propensity models are known before anything is
trained: the compiler generates a dbt model per slot and checks ``propensity`` conditions
against the model names. This module imports nothing heavy, so importing the compiler and
the segment assets (at every Dagster definitions load) stays light; clusters.py and
features.py, which need numpy, pandas and pyarrow, take their names from here.
"""

N_CLUSTERS = 6

# How far each label looks ahead: a month for a purchase; two weeks for "the next
# newsletter" (lists send weekly or fortnightly, and the sample keeps about 4 months of
# e-mail history, so a shorter window leaves room for a time split).
LABEL_DAYS: dict[str, int] = {"ticket_purchase_30d": 30, "newsletter_click": 14}

PROPENSITY_MODELS: dict[str, str] = {
    "ticket_purchase_30d": "Buys a ticket (paid order) in the 30 days after the cut-off.",
    "newsletter_click": (
        "Clicks the first newsletter sent to the profile in the 14 days after the cut-off "
        "(only profiles that were sent one are labelled)."
    ),
}


def auto_segment_names() -> list[str]:
    """The automatic segment slots, also the names of their dbt models (seg_auto_<n>)."""
    return [f"auto_{n}" for n in range(1, N_CLUSTERS + 1)]
