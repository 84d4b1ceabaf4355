"""``radpipe operator``: run the Kubernetes operator, generate its CRDs and RBAC."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_CRD_DIR = Path("crds")


@click.group()
def operator() -> None:
    """The Kubernetes operator: AnalysisJob resources -> one batch/v1 Job per stage."""


@operator.command("run")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only these.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace.")
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="kopf's liveness endpoint ('' to disable).",
)
@click.option("--metrics-port", type=int, default=None, help="Override the /metrics port.")
@click.pass_context
def run(
    ctx: click.Context,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness: str,
    metrics_port: int | None,
) -> None:
    """Run the operator (one replica: it is standalone, no peering).

    Stage Jobs get the artifact-store settings through the Secret named by
    RADPIPE_OPERATOR_STAGE_ENV_SECRET; the operator itself reads the same RADPIPE_STORE__*
    variables to read results and delete artifacts.
    """
    import kopf

    from radpipe.kube.cluster import KubernetesCluster
    from radpipe.kube.handlers import Requeuer, build_registry, kopf_settings
    from radpipe.kube.metrics import Metrics
    from radpipe.kube.queue import Ledger
    from radpipe.kube.reconcile import Operator
    from radpipe.kube.settings import OperatorSettings
    from radpipe.store import open_store

    if not namespaces and not all_namespaces:
        raise click.UsageError("name the namespaces to watch (-n NS ...) or -A for all")
    settings = OperatorSettings()
    if metrics_port is not None:
        settings.metrics_port = metrics_port or None
    radpipe_settings = ctx.find_root().obj.settings
    ledger = Ledger()
    op = Operator(
        cluster=KubernetesCluster(pool_size=settings.workers * 2),
        store=open_store(radpipe_settings.store),
        settings=settings,
        metrics=Metrics(ledger),
        ledger=ledger,
    )
    requeuer = Requeuer(op, settings.workers)
    op.requeue = requeuer
    kopf.configure(verbose=False)
    kopf.run(
        registry=build_registry(op, requeuer),
        settings=kopf_settings(op),
        standalone=True,
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness or None,
    )


@operator.command("crds")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_CRD_DIR,
    show_default=True,
    help="Directory of the generated CRD YAML.",
)
@click.option("--check", is_flag=True, help="Only check that the files are up to date.")
def crds(out_dir: Path, check: bool) -> None:
    """(Re)generate the CRD YAML from the pydantic models in radpipe.api."""
    from radpipe.api.crd import stale_files, write_crds

    if check:
        stale = stale_files(out_dir)
        if stale:
            click.echo(f"stale CRDs in {out_dir}: {', '.join(stale)}", err=True)
            click.echo("run `radpipe operator crds` and commit the result", err=True)
            sys.exit(1)
        click.echo(f"CRDs in {out_dir} are up to date")
        return
    for path in write_crds(out_dir):
        click.echo(str(path))


@operator.command("rbac")
@click.option("--namespace", default="radpipe", show_default=True, help="Operator namespace.")
@click.option(
    "--job-namespace",
    "job_namespaces",
    multiple=True,
    help="Namespaces where AnalysisJobs run (stage-runner account); repeatable.",
)
def rbac(namespace: str, job_namespaces: tuple[str, ...]) -> None:
    """Print least-privilege ServiceAccounts and RBAC for the operator and stage pods."""
    import yaml

    from radpipe.kube.rbac import manifests

    docs = manifests(namespace, list(job_namespaces) or [namespace])
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
