"""``cdp api``: serve the profile API, and manage its keys (mounted by cdp_pipeline.cli)."""

from typing import Annotated

import typer

from cdp_pipeline.api.keys import SCOPES

api_app = typer.Typer(
    help="The profile API: serve it, create and revoke its keys.", invoke_without_command=True
)


@api_app.callback()
def api(
    context: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes; 2 on a 2-core host (docs/profile_api.md).")
    ] = 1,
) -> None:
    """Serve the profile API on the current serving snapshot (no sub-command)."""
    if context.invoked_subcommand is None:
        from cdp_pipeline.api.server import serve

        serve(host, port, workers)


@api_app.command("create-key")
def create_key_command(
    name: Annotated[str, typer.Option(help="Who uses the key, e.g. 'website'.")],
    scope: Annotated[list[str], typer.Option(help=f"Repeat per scope: {', '.join(SCOPES)}.")],
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from cdp_pipeline.api.keys import create_key

    try:
        plaintext = create_key(name, scope)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(plaintext)


@api_app.command("revoke-key")
def revoke_key_command(key_id: Annotated[str, typer.Argument(help="The id in cdp_<id>_…")]) -> None:
    """Revoke a key; the running server stops accepting it within a second."""
    from cdp_pipeline.api.keys import revoke_key

    if not revoke_key(key_id):
        raise typer.BadParameter(f"No key with id {key_id!r}")
    typer.echo(f"Revoked {key_id}")


@api_app.command("list-keys")
def list_keys_command() -> None:
    """List key ids, names and scopes (never the keys)."""
    from cdp_pipeline.api.keys import list_keys

    for key in list_keys():
        typer.echo(f"{key.key_id}  {key.name:<20} {','.join(sorted(key.scopes))}  {key.created_at}")
