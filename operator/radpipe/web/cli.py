"""``radpipe web``: serve the web front end; ``radpipe web add-user``: manage local users."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from radpipe.config import Settings


def _settings() -> Settings:
    from radpipe.cli import CliState

    state = click.get_current_context().find_object(CliState)
    if state is None:  # called outside the radpipe group (tests, python -m)
        from radpipe.config import load_settings

        return load_settings()
    return state.settings


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option(
    "--users",
    "users_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Local user file (default: web.users_file, else DATA_DIR/web-users.yaml).",
)
@click.option(
    "--cluster/--local",
    "cluster",
    default=None,
    help="Create AnalysisJob resources in the cluster, or run jobs in this process "
    "(default: web.mode).",
)
@click.pass_context
def web(
    ctx: click.Context, host: str, port: int, users_file: Path | None, cluster: bool | None
) -> None:
    """Serve the web pages and the JSON API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    if ctx.invoked_subcommand is not None:
        return  # add-user reads --users from this context's params
    import uvicorn

    from radpipe.web.app import create_app
    from radpipe.web.auth import users_file_path

    settings = _settings()
    if cluster is not None:
        settings.web.mode = "cluster" if cluster else "local"
    if users_file is not None:
        settings.web.users_file = users_file
    path = users_file_path(settings)
    if not path.exists() and not settings.web.oidc_issuer:
        click.echo(
            f"note: no users yet ({path}); add one with `radpipe web add-user NAME --role admin`",
            err=True,
        )
    app = create_app(settings)
    click.echo(f"radpipe web ({settings.web.mode} mode) on http://{host}:{port}/", err=True)
    # Open live-update streams (server-sent events) would hold a shutdown for up to their
    # minute; browsers reconnect by themselves, so they are cut after a few seconds.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=5,
    )


@web.command("add-user")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["requester", "radiologist", "admin"]),
    default=("requester",),
    show_default=True,
    help="Role (repeatable).",
)
@click.option("--display", default="", help="Name shown on the pages, e.g. 'Dr A. Example'.")
@click.option(
    "--department",
    default="",
    help="The user's department: jobs they request are seen only within it (and by admins).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--users",
    "users_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="User file to write (default: as `radpipe web`).",
)
@click.pass_context
def add_user(
    ctx: click.Context,
    name: str,
    roles: tuple[str, ...],
    display: str,
    department: str,
    password_stdin: bool,
    users_file: Path | None,
) -> None:
    """Add a local user, or set a user's password and roles (stored as an scrypt hash)."""
    from radpipe.web.auth import users_file_path
    from radpipe.web.users import UserFile, UserFileError

    parent_users = ctx.parent.params.get("users_file") if ctx.parent else None
    path = users_file or parent_users or users_file_path(_settings())
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("use a password of at least 8 characters")
    try:
        UserFile(path).set_user(name, password, list(roles), display, department)
    except UserFileError as err:
        raise click.ClickException(str(err)) from err
    where = f", department {department}" if department else ""
    click.echo(f"user {name} ({', '.join(roles)}{where}) saved in {path}")
