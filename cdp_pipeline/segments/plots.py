"""Plots for asset metadata: PNG images embedded in Markdown (the Dagster UI renders them).

matplotlib is imported when a plot is drawn, not with this module: the segment assets
import it when the Dagster definitions load, which must stay light.
"""

import base64
import io
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from cdp_pipeline.segments.propensity import Evaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    """matplotlib.pyplot with the file-only Agg backend (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _markdown_image(figure: "Figure", title: str) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{title}](data:image/png;base64,{encoded})"


def size_history_markdown(history: pd.DataFrame, max_runs: int = 30) -> str:
    """Segment sizes per run (columns run_at, segment, size): a line plot and a table."""
    if history.empty:
        return "No segment membership yet."
    plt = _pyplot()
    pivot = (
        history.pivot_table(
            index="run_at", columns="segment", values="size", aggfunc="sum", fill_value=0
        )
        .sort_index()
        .tail(max_runs)
    )
    figure, axes = plt.subplots(figsize=(8, 3.5))
    for segment in pivot.columns:
        axes.plot(pivot.index, pivot[segment], marker="o", label=segment)
    axes.set_ylabel("members")
    axes.set_title("Segment size per run")
    axes.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.autofmt_xdate()
    image = _markdown_image(figure, "segment size per run")
    header = "| run | " + " | ".join(pivot.columns) + " |"
    rule = "| --- |" + " --- |" * len(pivot.columns)
    rows = [
        f"| {run:%Y-%m-%d %H:%M} | " + " | ".join(str(int(v)) for v in values) + " |"
        for run, values in zip(pivot.index, pivot.to_numpy(), strict=True)
    ]
    return "\n".join([image, "", header, rule, *rows])


def propensity_markdown(evaluation: Evaluation) -> str:
    """Reliability curve and lift per decile (model vs recency rule) of one model."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    reliability = evaluation.reliability
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    left.plot(reliability["mean_predicted"], reliability["observed_rate"], marker="o")
    left.set_xlabel("mean predicted probability")
    left.set_ylabel("observed rate")
    left.set_title(f"Calibration (Brier {evaluation.brier:.3f})")
    lift = evaluation.lift_by_decile.sort_values("decile")
    width = 0.4
    right.bar(lift["decile"] - width / 2, lift["lift"], width, label="model")
    right.bar(lift["decile"] + width / 2, lift["lift_recency_rule"], width, label="recency rule")
    right.axhline(1.0, color="grey", linewidth=1)
    right.set_xlabel("decile (10 = most likely)")
    right.set_ylabel("lift")
    right.set_title(f"Lift (AUC {evaluation.auc:.3f} vs {evaluation.auc_recency_rule:.3f})")
    right.legend(fontsize=7)
    figure.suptitle(evaluation.model)
    return _markdown_image(figure, f"{evaluation.model} calibration and lift")
