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
    """Segment sizes, entries and exits per run: a plot of both and a table.

    ``history`` has the columns run_at, segment, size, entered, exited (one row per run and
    segment, ``membership.segment_size_history``). The upper panel draws each segment's
    size; the lower one its entries (above zero) and exits (below zero) as stacked bars.
    A table cell reads ``size (+entered −exited)``.
    """
    if history.empty:
        return "No segment membership yet."
    plt = _pyplot()
    frames = {
        column: history.pivot_table(
            index="run_at", columns="segment", values=column, aggfunc="sum", fill_value=0
        )
        .sort_index()
        .tail(max_runs)
        for column in ("size", "entered", "exited")
    }
    sizes, entered, exited = frames["size"], frames["entered"], frames["exited"]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    runs = list(range(len(sizes.index)))
    colours = plt.get_cmap("tab20")
    up, down = [0.0] * len(runs), [0.0] * len(runs)
    for index, segment in enumerate(sizes.columns):
        colour = colours(index % 20)
        top.plot(runs, sizes[segment], marker="o", label=segment, color=colour)
        bottom.bar(runs, entered[segment], bottom=up, color=colour, width=0.6)
        bottom.bar(runs, -exited[segment], bottom=[-d for d in down], color=colour, width=0.6)
        up = [u + v for u, v in zip(up, entered[segment], strict=True)]
        down = [d + v for d, v in zip(down, exited[segment], strict=True)]
    top.set_ylabel("members")
    top.set_title("Segment size per run; below, entries and exits")
    top.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    bottom.axhline(0, color="grey", linewidth=1)
    bottom.set_ylabel("entries (+) / exits (−)")
    bottom.set_xticks(runs, [f"{run:%m-%d %H:%M}" for run in sizes.index], rotation=45)
    image = _markdown_image(figure, "segment size, entries and exits per run")
    header = "| run | " + " | ".join(sizes.columns) + " |"
    rule = "| --- |" + " --- |" * len(sizes.columns)
    rows = [
        f"| {run:%Y-%m-%d %H:%M} | "
        + " | ".join(
            f"{int(size)} (+{int(came)} −{int(left)})"
            for size, came, left in zip(
                sizes.loc[run], entered.loc[run], exited.loc[run], strict=True
            )
        )
        + " |"
        for run in sizes.index
    ]
    return "\n".join(
        [image, "", "size (+entered −exited) after each run:", "", header, rule, *rows]
    )


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
