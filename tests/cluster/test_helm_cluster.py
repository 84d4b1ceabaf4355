"""The chart against a real kube-apiserver: every rendered object passes a server-side
dry-run (built-in schemas, our CRDs with their CEL rules, KServe's InferenceService and
ServingRuntime, the Prometheus Operator's ServiceMonitor, PodSecurity ``restricted``), and
each ServiceAccount (operator, stage runner, web app, DICOM receiver) can do exactly what
radpipe needs and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fixtures.cluster import ControlPlane, kserve_crd
from tests.fixtures.helm import PRODUCTION_VALUES, Doc, Helm
from tests.fixtures.tools import REPO

pytestmark = [pytest.mark.integration]

PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
SERVICE_MONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
RBAC_KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def go_module_dir(module: str, version: str) -> Path:
    """A Go module's directory in the module cache (``go mod download``, cached)."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO / "scripts" / "kube",
    )
    return Path(json.loads(found.stdout)["Dir"])


@dataclass(frozen=True)
class Namespaces:
    """A release namespace and two job namespaces, all enforcing ``restricted``."""

    release: str
    jobs: tuple[str, str]


@pytest.fixture(scope="module")
def chart_cluster(control_plane: ControlPlane) -> Iterator[Namespaces]:
    """The extra CRDs the chart's objects need, and fresh namespaces for them."""
    plane = control_plane
    plane.kubectl(
        "apply",
        "--server-side",
        "-f",
        str(kserve_crd().with_name("serving.kserve.io_servingruntimes.yaml")),
    )
    monitoring = go_module_dir(PROMETHEUS_OPERATOR, PROMETHEUS_OPERATOR_VERSION)
    plane.kubectl("apply", "--server-side", "-f", str(monitoring / SERVICE_MONITOR_CRD))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servingruntimes.serving.kserve.io",
        "crd/servicemonitors.monitoring.coreos.com",
    )
    suffix = uuid.uuid4().hex[:6]
    spaces = Namespaces(f"helm-{suffix}", (f"helm-{suffix}-a", f"helm-{suffix}-b"))
    for name in (spaces.release, *spaces.jobs):
        plane.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                },
            }
        )
    yield spaces
    plane.kubectl("delete", "namespace", spaces.release, *spaces.jobs, "--wait=false", check=False)


def dry_run(plane: ControlPlane, docs: list[Doc]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
        check=False,
    )


@pytest.mark.parametrize("production", [False, True], ids=["default", "production"])
def test_every_object_passes_server_side_dry_run(
    helm: Helm, control_plane: ControlPlane, chart_cluster: Namespaces, production: bool
) -> None:
    spaces = chart_cluster
    values = [PRODUCTION_VALUES] if production else []
    sets = (
        [
            f"jobNamespaces={{{spaces.jobs[0]},{spaces.jobs[1]}}}",
            f"web.jobNamespace={spaces.jobs[0]}",
            f"models.namespace={spaces.jobs[0]}",
            f"intake.jobNamespace={spaces.jobs[0]}",
        ]
        if production
        else []
    )
    docs = helm.template(values, sets, release="dry", namespace=spaces.release)
    kinds = {d["kind"] for d in docs}
    assert {"InferenceService", "ServingRuntime", "AnalysisApp", "NetworkPolicy"} <= kinds
    if production:
        assert {"ServiceMonitor", "Ingress"} <= kinds
        # the DICOM receiver and its parts (production values enable it)
        receiver = [
            d["kind"]
            for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "intake"
        ]
        assert sorted(receiver) == [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    result = dry_run(control_plane, docs)
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), result.stdout


def test_dry_run_catches_a_pod_that_breaks_restricted(
    helm: Helm, control_plane: ControlPlane, chart_cluster: Namespaces
) -> None:
    """The check above has teeth: a pod without the restricted settings is reported."""
    docs = helm.template(release="dry", namespace=chart_cluster.release, crds=False)
    (operator,) = [
        d for d in docs if d["kind"] == "Deployment" and "operator" in d["metadata"]["name"]
    ]
    pod = operator["spec"]["template"]["spec"]
    del pod["securityContext"], pod["containers"][0]["securityContext"]
    result = dry_run(control_plane, [operator])
    assert 'would violate PodSecurity "restricted:latest"' in result.stderr
    for missing in ("allowPrivilegeEscalation", "capabilities", "runAsNonRoot", "seccompProfile"):
        assert missing in result.stderr


@pytest.fixture(scope="module")
def rbac_release(
    helm: Helm, control_plane: ControlPlane, chart_cluster: Namespaces
) -> Iterator[str]:
    """The chart's ServiceAccounts and RBAC, applied for real under a unique release name."""
    release = f"rb{uuid.uuid4().hex[:6]}"
    docs = helm.template(
        sets=[
            f"jobNamespaces={{{chart_cluster.jobs[0]},{chart_cluster.jobs[1]}}}",
            "intake.enabled=true",
            "intake.allowedCallingAEs={CT1}",
        ],
        release=release,
        namespace=chart_cluster.release,
        crds=False,
    )
    rbac_docs = [d for d in docs if d["kind"] in RBAC_KINDS]
    control_plane.apply(*rbac_docs)
    yield f"{release}-radpipe"
    for doc in rbac_docs:
        if doc["kind"].startswith("Cluster"):
            control_plane.kubectl("delete", doc["kind"], doc["metadata"]["name"], check=False)


def can(plane: ControlPlane, account: str, *args: str) -> bool:
    result = plane.kubectl("auth", "can-i", *args, f"--as={account}", check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def allowed(plane: ControlPlane, account: str, namespace: str) -> dict[str, set[str]]:
    """``kubectl auth can-i --list``: resource -> verbs (discovery rules left out)."""
    out = plane.kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={account}").stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        verbs = re.search(r"\[([^\]]*)\]\s*$", line)
        resource = line.split()[0] if line.split() else ""
        if not verbs or resource.startswith("[") or "selfsubject" in resource:
            continue
        found.setdefault(resource, set()).update(verbs.group(1).split())
    return found


def test_operator_can_do_exactly_what_it_needs(
    control_plane: ControlPlane, chart_cluster: Namespaces, rbac_release: str
) -> None:
    plane = control_plane
    job_ns, other_job_ns = chart_cluster.jobs
    me = f"system:serviceaccount:{chart_cluster.release}:{rbac_release}-operator"
    for ns in (job_ns, other_job_ns):
        assert can(plane, me, "create", "jobs.batch", "-n", ns)
        assert can(plane, me, "watch", "jobs.batch", "-n", ns)
        assert can(plane, me, "delete", "jobs.batch", "-n", ns)
        assert can(plane, me, "patch", "analysisjobs.radpipe.io", "--subresource=status", "-n", ns)
        assert can(plane, me, "watch", "analysisjobs.radpipe.io", "-n", ns)
        assert can(plane, me, "create", "events", "-n", ns)
        assert can(plane, me, "get", "pods", "--subresource=log", "-n", ns)
        assert can(plane, me, "get", "inferenceservices.serving.kserve.io", "-n", ns)
    assert can(plane, me, "watch", "analysisapps.radpipe.io")
    # ...and nothing else.
    for ns in (job_ns, chart_cluster.release):
        assert not can(plane, me, "list", "secrets", "-n", ns)
        assert not can(plane, me, "get", "secrets", "-n", ns)
        assert not can(plane, me, "create", "pods", "-n", ns)
        assert not can(plane, me, "create", "analysisjobs.radpipe.io", "-n", ns)
        assert not can(plane, me, "delete", "analysisjobs.radpipe.io", "-n", ns)
        assert not can(plane, me, "update", "configmaps", "-n", ns)
        assert not can(plane, me, "create", "rolebindings.rbac.authorization.k8s.io", "-n", ns)
    assert not can(plane, me, "list", "secrets", "--all-namespaces")
    assert not can(plane, me, "create", "jobs.batch", "-n", chart_cluster.release)
    assert not can(plane, me, "create", "jobs.batch", "-n", "default")
    assert not can(plane, me, "*", "*", "--all-namespaces")
    assert not can(plane, me, "patch", "analysisapps.radpipe.io")
    assert allowed(plane, me, job_ns) == {
        "analysisjobs.radpipe.io": {"get", "list", "watch", "patch", "update"},
        "analysisjobs.radpipe.io/status": {"get", "patch", "update"},
        "analysisapps.radpipe.io": {"get", "list", "watch"},
        "jobs.batch": {"get", "list", "watch", "create", "delete"},
        "pods": {"get", "list"},
        "pods/log": {"get"},
        "events": {"create", "patch"},
        "events.events.k8s.io": {"create", "patch"},
        "inferenceservices.serving.kserve.io": {"get"},
        "namespaces": {"get", "list", "watch"},
        "customresourcedefinitions.apiextensions.k8s.io": {"get", "list", "watch"},
    }


def test_stage_runner_only_reads_its_job_and_models(
    control_plane: ControlPlane, chart_cluster: Namespaces, rbac_release: str
) -> None:
    plane = control_plane
    job_ns, other_job_ns = chart_cluster.jobs
    me = f"system:serviceaccount:{job_ns}:{rbac_release}-stage-runner"
    assert can(plane, me, "get", "analysisjobs.radpipe.io", "-n", job_ns)
    assert can(plane, me, "get", "analysisapps.radpipe.io")
    assert can(plane, me, "get", "inferenceservices.serving.kserve.io", "-n", job_ns)
    assert not can(plane, me, "get", "analysisjobs.radpipe.io", "-n", other_job_ns)
    assert not can(plane, me, "list", "analysisjobs.radpipe.io", "-n", job_ns)
    assert not can(
        plane, me, "patch", "analysisjobs.radpipe.io", "--subresource=status", "-n", job_ns
    )
    assert not can(plane, me, "create", "jobs.batch", "-n", job_ns)
    assert not can(plane, me, "get", "secrets", "-n", job_ns)
    assert allowed(plane, me, job_ns) == {
        "analysisjobs.radpipe.io": {"get"},
        "analysisapps.radpipe.io": {"get"},
        "inferenceservices.serving.kserve.io": {"get"},
    }


def test_web_app_submits_jobs_in_its_namespace_only(
    control_plane: ControlPlane, chart_cluster: Namespaces, rbac_release: str
) -> None:
    plane = control_plane
    job_ns, other_job_ns = chart_cluster.jobs
    me = f"system:serviceaccount:{chart_cluster.release}:{rbac_release}-web"
    assert can(plane, me, "create", "analysisjobs.radpipe.io", "-n", job_ns)
    assert can(plane, me, "patch", "analysisjobs.radpipe.io", "-n", job_ns)
    assert can(plane, me, "list", "analysisapps.radpipe.io")
    assert not can(plane, me, "create", "analysisjobs.radpipe.io", "-n", other_job_ns)
    assert not can(plane, me, "delete", "analysisjobs.radpipe.io", "-n", job_ns)
    assert not can(
        plane, me, "patch", "analysisjobs.radpipe.io", "--subresource=status", "-n", job_ns
    )
    assert not can(plane, me, "create", "jobs.batch", "-n", job_ns)
    assert not can(plane, me, "list", "secrets", "-n", chart_cluster.release)


def test_receiver_only_creates_gets_and_lists_jobs_in_its_namespace(
    control_plane: ControlPlane, chart_cluster: Namespaces, rbac_release: str
) -> None:
    plane = control_plane
    job_ns, other_job_ns = chart_cluster.jobs
    me = f"system:serviceaccount:{chart_cluster.release}:{rbac_release}-intake"
    for verb in ("create", "get", "list"):
        assert can(plane, me, verb, "analysisjobs.radpipe.io", "-n", job_ns)
        assert not can(plane, me, verb, "analysisjobs.radpipe.io", "-n", other_job_ns)
    for verb in ("watch", "patch", "update", "delete", "deletecollection"):
        assert not can(plane, me, verb, "analysisjobs.radpipe.io", "-n", job_ns)
    assert not can(
        plane, me, "patch", "analysisjobs.radpipe.io", "--subresource=status", "-n", job_ns
    )
    assert not can(plane, me, "get", "analysisapps.radpipe.io")
    assert not can(plane, me, "create", "jobs.batch", "-n", job_ns)
    assert not can(plane, me, "get", "secrets", "-n", chart_cluster.release)
    assert not can(plane, me, "get", "configmaps", "-n", chart_cluster.release)
    assert not can(plane, me, "*", "*", "--all-namespaces")
    assert allowed(plane, me, job_ns) == {
        "analysisjobs.radpipe.io": {"create", "get", "list"},
    }
    assert allowed(plane, me, other_job_ns) == {}
    assert allowed(plane, me, chart_cluster.release) == {}


def test_stage_jobs_the_operator_makes_pass_restricted(
    helm: Helm, control_plane: ControlPlane, chart_cluster: Namespaces
) -> None:
    """A stage Job built with the settings the chart gives the operator is admitted in a
    restricted job namespace, under the chart's stage account."""
    from radpipe.api.apps import get_app
    from radpipe.api.models import AnalysisJob
    from radpipe.kube.jobspec import build_stage_job
    from radpipe.kube.settings import OperatorSettings

    namespace = chart_cluster.release
    docs = helm.template(release="dry", namespace=namespace, crds=False)
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "dry-radpipe-operator"
    ]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    settings = OperatorSettings(
        **{
            e["name"].removeprefix("RADPIPE_OPERATOR_").lower(): json.loads(e["value"])
            if e["name"].endswith("NAMESPACE_LIMITS")
            else e["value"]
            for e in env
            if e["name"].startswith("RADPIPE_OPERATOR_")
        }
    )
    job = AnalysisJob.model_validate(
        {
            "metadata": {"name": "j1", "namespace": namespace, "uid": str(uuid.uuid4())},
            "spec": {"accession": "A1", "app": "glioma"},
        }
    )
    manifest = build_stage_job(job, get_app("glioma").spec, "infer", 1, settings)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dry-radpipe-stage-runner"
    result = dry_run(control_plane, [manifest])
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
