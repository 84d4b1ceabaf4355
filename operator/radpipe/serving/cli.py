"""``radpipe serve-models``: serve the ONNX models over the KServe V2 protocol."""

from __future__ import annotations

from pathlib import Path

import click

from radpipe.serving.spec import ModelSpecError, default_models_dir, find_models


def _configured_models_dir(ctx: click.Context) -> Path | None:
    # ctx.obj is the main CLI's state; its settings load the config file on first use.
    settings = getattr(ctx.obj, "settings", None) if ctx.obj is not None else None
    models = getattr(settings, "models", None)
    return getattr(models, "dir", None)


@click.command("serve-models")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option("--no-grpc", is_flag=True, help="Serve REST only.")
@click.option(
    "--models",
    "names",
    multiple=True,
    metavar="NAME",
    help="Serve only these models (repeatable); default: every model directory.",
)
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of models/<name>/ (default: models.dir from the config, else bundled).",
)
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="ONNX Runtime threads.")
@click.pass_context
def serve_models(
    ctx: click.Context,
    http_port: int,
    grpc_port: int,
    no_grpc: bool,
    names: tuple[str, ...],
    models_dir: Path | None,
    threads: int | None,
) -> None:
    """Serve radpipe's models with a KServe ModelServer (V2 REST with binary tensors, gRPC).

    Endpoints: /v2/health/ready, /v2/models/<name> (metadata), /v2/models/<name>/infer.
    """
    directory = models_dir or _configured_models_dir(ctx) or default_models_dir()
    if not directory.is_dir():
        raise click.ClickException(f"models directory {directory} does not exist")
    try:
        specs = find_models(directory, list(names) or None)
    except ModelSpecError as err:
        raise click.ClickException(str(err)) from err
    if not specs:
        raise click.ClickException(f"no model directories (with model.json) under {directory}")
    if not no_grpc and grpc_port == http_port:
        raise click.ClickException("--http-port and --grpc-port must differ")
    click.echo(
        f"serving {', '.join(f'{s.name} {s.version}' for s in specs)} on http://0.0.0.0:"
        f"{http_port}/v2" + ("" if no_grpc else f" and gRPC :{grpc_port}"),
        err=True,
    )
    from radpipe.serving.server import serve

    try:
        serve(specs, http_port, grpc_port, enable_grpc=not no_grpc, threads=threads)
    except OSError as err:
        raise click.ClickException(f"cannot serve: {err}") from err
