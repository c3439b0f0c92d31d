"""Activation from the command line: ``python -m cdp_pipeline.activation dry-run NAME``.

Prints counts and the profile ids a sync would add, update and remove; sends nothing.
"""

import json
from dataclasses import asdict
from typing import Annotated

import typer

from cdp_pipeline.activation.config import load_destinations
from cdp_pipeline.activation.state import read_history
from cdp_pipeline.activation.sync import dry_run
from cdp_pipeline.settings import get_settings

app = typer.Typer(help="Activation: destinations, dry runs and sync history.", no_args_is_help=True)


@app.command("dry-run")
def dry_run_command(
    destination: Annotated[str, typer.Argument(help="Destination name from destinations.yml.")],
    ids: Annotated[bool, typer.Option(help="List the profile ids, not only counts.")] = False,
) -> None:
    """What the destination's next sync would add, update and remove."""
    report = dry_run(destination)
    typer.echo(report.summary())
    if ids:
        typer.echo(json.dumps(asdict(report), indent=2))


@app.command("history")
def history_command(
    destination: Annotated[str | None, typer.Argument(help="Only this destination.")] = None,
    limit: Annotated[int, typer.Option(help="Most recent syncs to show.")] = 20,
) -> None:
    """Counts of the most recent syncs (sent, failed, skipped for consent, match rate)."""
    for row in read_history(get_settings().state_dir, destination)[:limit]:
        skipped = sum(
            int(row.get(name) or 0)
            for name in ("skipped_no_consent", "skipped_suppressed", "skipped_minor")
        )
        typer.echo(
            f"{row['started_at']} {row['destination']:<32} {row['outcome']:<8}"
            f" sent {row['sent'] or 0} failed {row['failed'] or 0} removed {row['removed'] or 0}"
            f" skipped for consent {skipped} match rate {row['match_rate'] or '-'}"
        )


@app.command("list")
def list_command() -> None:
    """The declared destinations, enabled or not."""
    for item in load_destinations(include_disabled=True):
        state = "enabled" if item.enabled else "disabled"
        typer.echo(f"{item.name:<32} {item.type:<22} {item.segment:<32} {state}")


if __name__ == "__main__":
    app()
