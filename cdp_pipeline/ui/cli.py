"""``cdp ui``: serve the marketer web app, and manage its users (mounted by cdp_pipeline.cli)."""

from typing import Annotated

import typer

from cdp_pipeline.ui.auth import ROLES

ui_app = typer.Typer(
    help="The marketer web app: serve it, add its users.", invoke_without_command=True
)


@ui_app.callback()
def ui(
    context: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve the marketer UI on the current snapshot (no sub-command)."""
    if context.invoked_subcommand is None:
        from cdp_pipeline.ui.server import serve

        serve(host, port)


@ui_app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "marketer",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for when not given (at least 8 characters).",
        ),
    ] = "",
) -> None:
    """Add a user, or give an existing one a new role and password."""
    from cdp_pipeline.ui.auth import create_user

    try:
        user = create_user(name, role, password)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(f"User {user.name} ({user.role}) saved")
