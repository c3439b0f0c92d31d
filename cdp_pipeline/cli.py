"""The ``cdp`` command: sample data and the nightly job, in-process."""

import contextlib
import io
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from cdp_pipeline.api.cli import api_app
from cdp_pipeline.settings import get_settings
from cdp_pipeline.ui.cli import ui_app

# Lines of the captured dbt output shown when a quiet night fails.
_FAILURE_TAIL_LINES = 80

app = typer.Typer(help="An open-source Customer Data Platform.", no_args_is_help=True)
app.add_typer(api_app, name="api")
app.add_typer(ui_app, name="ui")
segments_app = typer.Typer(help="Marketer segments (YAML) compiled into dbt models.")
app.add_typer(segments_app, name="segments")


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option(help="Folder to write the exports into.")] = Path(
        "data/landing"
    ),
    people: Annotated[int, typer.Option(min=1, help="Size of the population.")] = 2000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same files.")
    ] = 42,
    as_of: Annotated[
        str | None, typer.Option(help="Delivery date YYYY-MM-DD (default: the sample's date).")
    ] = None,
    increment: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Add the next night's delivery to the existing one in --out instead: "
            "round(people × INCREMENT) new people, dated --as-of (required, later than the "
            "existing files). Snapshot sources get a new full file, the others a delta.",
        ),
    ] = None,
    web_visit_factor: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Scale website visits and app sessions per visitor (1.0: about 4 web "
            "events per person; 7.5 gives about 20, the issue's city-scale mix).",
        ),
    ] = 1.0,
) -> None:
    """Write one export of every source for a generated population, with the truth."""
    from cdp_pipeline.sample_data import generate
    from cdp_pipeline.sample_data.increment import IncrementError, generate_increment

    as_of_date = date.fromisoformat(as_of) if as_of else None
    if increment is not None:
        if as_of_date is None:
            raise typer.BadParameter("--increment needs --as-of, the next delivery's date")
        try:
            counts = generate_increment(
                out,
                people=people,
                seed=seed,
                fraction=increment,
                as_of=as_of_date,
                web_visit_factor=web_visit_factor,
            )
        except IncrementError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(code=2) from error
        typer.echo(f"Added the delivery of {as_of} to {out}:")
        for source, rows in counts.items():
            typer.echo(f"  {source:<18} {rows:>10} new rows")
        return
    counts = generate(
        out, people=people, seed=seed, as_of=as_of_date, web_visit_factor=web_visit_factor
    )
    typer.echo(f"Wrote sample exports for {people} people to {out}:")
    for source, rows in counts.items():
        typer.echo(f"  {source:<18} {rows:>10} rows")


@app.command("run")
def run(
    retrain: Annotated[
        bool, typer.Option(help="Train the linkage model again instead of reusing it.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option(help="Show every step's log, not only warnings.")
    ] = False,
) -> None:
    """Run the nightly job once, in-process, then the syncs its changes call for."""
    from cdp_pipeline.runner import run_nightly, summary_lines

    if verbose:
        outcome = run_nightly(retrain=retrain, log_level="INFO")
    else:
        # dagster-dbt echoes every dbt event to stdout; keep it for when the night fails.
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            outcome = run_nightly(retrain=retrain, log_level="WARNING")
        if not outcome.success:
            tail = captured.getvalue().splitlines()[-_FAILURE_TAIL_LINES:]
            typer.echo("\n".join(tail), err=True)
    for line in summary_lines(get_settings(), outcome):
        typer.echo(line)
    if not outcome.success:
        raise typer.Exit(code=1)


@segments_app.command("compile")
def segments_compile() -> None:
    """Compile cdp_pipeline/config/segments/*.yml into dbt models and the segments var."""
    from cdp_pipeline.segments.compiler import SegmentDefinitionError, compile_segments

    try:
        changed = compile_segments()
    except SegmentDefinitionError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from error
    typer.echo(f"{len(changed)} file(s) changed")


@app.command("collect")
def collect(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the event endpoint.")] = 8088,
) -> None:
    """Run the Segment-compatible event endpoint (write keys: CDP_WRITE_KEYS)."""
    from cdp_pipeline.collect.server import serve

    serve(host=host, port=port)


if __name__ == "__main__":
    app()
