"""The Helm chart: lint, render with default and production-like values, and check what it
renders against the code it deploys (config schema, operator settings and RBAC, CRDs, apps)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from radpipe.config import Settings
from radpipe.kube import names, rbac
from radpipe.kube.settings import OperatorSettings
from tests.fixtures.helm import CHART, PRODUCTION_VALUES, Doc, Helm, find, of_kind
from tests.fixtures.tools import REPO

WORKLOADS = ("Deployment", "StatefulSet")


def pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    """(name, pod spec) of every workload, plus the KServe ServingRuntime's containers."""
    found = [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]
    for runtime in of_kind(docs, "ServingRuntime"):
        found.append((runtime["metadata"]["name"], runtime["spec"]))
    return found


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def rule_set(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("values", [[], [PRODUCTION_VALUES]], ids=["default", "production"])
def test_helm_lint_is_clean(helm: Helm, values: list[Any]) -> None:
    args = ["lint", "--strict", str(CHART)] + [a for v in values for a in ("--values", str(v))]
    result = helm.run(*args)
    assert "0 chart(s) failed" in result.stdout


def test_default_render_has_every_part(default_render: list[Doc]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in default_render}
    for expected in [
        ("CustomResourceDefinition", "analysisjobs.radpipe.io"),
        ("CustomResourceDefinition", "analysisapps.radpipe.io"),
        ("Deployment", "radpipe-operator"),
        ("ServiceAccount", "radpipe-operator"),
        ("PodDisruptionBudget", "radpipe-operator"),
        ("Service", "radpipe-operator-metrics"),
        ("Deployment", "radpipe-web"),
        ("Service", "radpipe-web"),
        ("ServiceAccount", "radpipe-stage-runner"),
        ("Secret", "radpipe-stage-env"),
        ("ConfigMap", "radpipe-config"),
        ("StatefulSet", "radpipe-minio"),
        ("ServingRuntime", "radpipe-onnx"),
        ("InferenceService", "glioma-unet"),
        ("InferenceService", "hemorrhage-cnn"),
        ("InferenceService", "metastasis-unet"),
        ("AnalysisApp", "glioma"),
        ("AnalysisApp", "hemorrhage"),
        ("AnalysisApp", "metastasis"),
        ("NetworkPolicy", "radpipe-default-deny"),
    ]:
        assert expected in kinds, f"{expected} not rendered"
    # Toggles that are off by default.
    assert not of_kind(default_render, "Ingress")
    assert not of_kind(default_render, "ServiceMonitor")


@pytest.mark.parametrize("render", ["default_render", "production_render"])
def test_pods_meet_the_restricted_pod_security_standard(
    render: str, request: pytest.FixtureRequest
) -> None:
    docs: list[Doc] = request.getfixturevalue(render)
    specs = pod_specs(docs)
    assert len(specs) >= 3
    for name, spec in specs:
        if "securityContext" in spec:  # the ServingRuntime has container contexts only
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True, name
            assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
            assert ctx["runAsNonRoot"] is True, name
            # A read-only root needs somewhere to write temporary files.
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), name


def test_chart_crds_are_the_generated_ones() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert chart_crds == generated
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes()


def test_analysis_apps_are_the_package_definitions(default_render: list[Doc]) -> None:
    apps_dir = REPO / "operator" / "radpipe" / "api" / "apps"
    rendered = {d["metadata"]["name"]: d for d in of_kind(default_render, "AnalysisApp")}
    assert set(rendered) == {p.stem for p in apps_dir.glob("*.yaml")}
    for name, doc in rendered.items():
        source = yaml.safe_load((apps_dir / f"{name}.yaml").read_text())
        labels = doc["metadata"].pop("labels")
        assert labels["app.kubernetes.io/part-of"] == "radpipe"
        assert doc == source


@pytest.mark.parametrize("render", ["default_render", "production_render"])
def test_config_map_and_stage_env_are_valid_radpipe_configuration(
    render: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs: list[Doc] = request.getfixturevalue(render)
    config = yaml.safe_load(find(docs, "ConfigMap", "radpipe-config")["data"]["radpipe.yaml"])
    from_file = Settings(**config)  # what the operator and the web app load
    assert from_file.store.backend == "s3"
    assert from_file.web.mode == "cluster"
    # The stage pods get the same configuration as environment variables.
    for key in [k for k in __import__("os").environ if k.startswith("RADPIPE_")]:
        monkeypatch.delenv(key)
    secrets = [d for d in of_kind(docs, "Secret") if d["metadata"]["name"].endswith("stage-env")]
    assert secrets
    for secret in secrets:
        for key, value in secret["data"].items():
            monkeypatch.setenv(key, base64.b64decode(value).decode())
        staged = Settings()
        assert staged.store.s3.endpoint == from_file.store.s3.endpoint
        assert staged.store.s3.bucket == from_file.store.s3.bucket
        assert staged.pacs.keys() == from_file.pacs.keys()
        assert staged.default_pacs == from_file.default_pacs
        assert staged.branding == from_file.branding


def test_production_config_reaches_every_part(production_render: list[Doc]) -> None:
    docs = production_render
    config = yaml.safe_load(find(docs, "ConfigMap", "radpipe-config")["data"]["radpipe.yaml"])
    assert config["store"]["s3"] == {
        "endpoint": "s3.hospital.example:443",
        "bucket": "radpipe-artifacts",
        "secure": True,
        "prefix": "",
        "region": "eu-central-1",
    }
    assert config["web"]["oidc_issuer"] == "https://login.hospital.example/realms/clinical"
    assert config["web"]["namespace"] == "radiology"
    assert config["pacs"]["vna"]["transport"] == "dicomweb"
    assert not of_kind(docs, "StatefulSet"), "external S3: no bundled MinIO"
    # Credentials only from the existing Secret; no chart-made credentials Secret.
    assert not [d for d in of_kind(docs, "Secret") if d["metadata"]["name"].endswith("credentials")]
    web = find(docs, "Deployment", "radpipe-web")
    env = env_of(web["spec"]["template"]["spec"]["containers"][0])
    assert env["RADPIPE_WEB__OIDC_CLIENT_SECRET"]["secretKeyRef"]["name"] == "radpipe-credentials"
    assert env["RADPIPE_STORE__S3__SECRET_KEY"]["secretKeyRef"]["name"] == "radpipe-credentials"
    ingress = find(docs, "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["radpipe.hospital.example"]
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert find(docs, "PodDisruptionBudget", "radpipe-web")["spec"]["minAvailable"] == 1
    # Stage accounts and env in both job namespaces.
    for ns in ("radiology", "research"):
        find(docs, "ServiceAccount", "radpipe-stage-runner", ns)
        find(docs, "Secret", "radpipe-stage-env", ns)
        find(docs, "RoleBinding", "radpipe-operator", ns)
    images = {c["image"] for _, spec in pod_specs(docs) for c in spec["containers"]}
    assert images == {
        "registry.hospital.example/radpipe/radpipe/operator:0.1.0",
        "registry.hospital.example/radpipe/radpipe/web:0.1.0",
        "registry.hospital.example/radpipe/radpipe/model-server:0.1.0-gpu",
    }


def test_operator_deployment_matches_the_operator(production_render: list[Doc]) -> None:
    from radpipe.kube.cli import operator as operator_cli

    deployment = find(production_render, "Deployment", "radpipe-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # The arguments are ones `radpipe operator run` accepts, watching the job namespaces.
    run = operator_cli.commands["run"]
    ctx = run.make_context("run", list(container["args"][2:]))
    assert ctx.params["namespaces"] == ("radiology", "research")
    assert ctx.params["metrics_port"] == 8000
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ctx.params["liveness"] == f"http://0.0.0.0:{ports['health']}/healthz"
    assert container["livenessProbe"]["httpGet"]["port"] == "health"
    # Every RADPIPE_OPERATOR_* variable is an operator setting, and they validate.
    env = env_of(container)
    settings = {
        k.removeprefix("RADPIPE_OPERATOR_").lower(): v
        for k, v in env.items()
        if k.startswith("RADPIPE_OPERATOR_")
    }
    assert set(settings) <= set(OperatorSettings.model_fields)
    parsed = OperatorSettings(
        **{k: json.loads(v) if k == "namespace_limits" else v for k, v in settings.items()}
    )
    assert parsed.stage_image == "registry.hospital.example/radpipe/radpipe/stage-runner:0.1.0"
    assert parsed.stage_service_account == "radpipe-stage-runner"
    assert parsed.stage_env_secret == "radpipe-stage-env"
    assert parsed.namespace_limits == {"research": 2}
    assert parsed.retention == "keep-reports"
    assert pod["serviceAccountName"] == "radpipe-operator"


def test_rbac_mirrors_the_operator_and_stage_rules(default_render: list[Doc]) -> None:
    roles = {d["metadata"]["name"]: d for d in of_kind(default_render, "ClusterRole")}
    operator = rule_set(roles["radpipe-operator"]["rules"]) | rule_set(
        roles["radpipe-operator-cluster"]["rules"]
    )
    assert operator == rule_set(rbac.OPERATOR_RULES)
    stage = rule_set(roles["radpipe-stage-runner"]["rules"]) | rule_set(
        roles["radpipe-stage-runner-apps"]["rules"]
    )
    assert stage == rule_set(rbac.STAGE_RULES + rbac.STAGE_CLUSTER_RULES)
    every_rule = [
        r for d in default_render if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]
    ]
    for group, resource, verb in rule_set(every_rule):
        assert "*" not in (group, resource, verb)
        assert resource not in ("secrets", "configmaps", "serviceaccounts/token")
    # The namespaced operator role is bound per job namespace, not cluster-wide.
    bindings = {d["metadata"]["name"] for d in of_kind(default_render, "ClusterRoleBinding")}
    assert "radpipe-operator" not in bindings
    find(default_render, "RoleBinding", "radpipe-operator", "radpipe")


def test_inference_services(production_render: list[Doc], default_render: list[Doc]) -> None:
    glioma = find(production_render, "InferenceService", "glioma-unet")
    predictor = glioma["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["minReplicas"] == 1 and predictor["maxReplicas"] == 2
    assert predictor["model"]["storageUri"] == "s3://radpipe-models/glioma-unet/0.2.0"
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert predictor["model"]["runtime"] == "radpipe-onnx"
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert glioma["metadata"]["annotations"]["radpipe.io/model-version"] == "0.2.0"
    assert glioma["metadata"]["namespace"] == "radiology"
    metastasis = find(production_render, "InferenceService", "metastasis-unet")
    assert "canaryTrafficPercent" not in metastasis["spec"]["predictor"]
    assert (
        metastasis["spec"]["predictor"]["model"]["storageUri"]
        == "s3://radpipe-models/metastasis-unet/0.1.0-rc2"
    )
    # The storage initializer's account lists the S3 Secret, which KServe reads.
    account = find(default_render, "ServiceAccount", "radpipe-models")
    secret = find(default_render, "Secret", account["secrets"][0]["name"])
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == (
        "radpipe-minio.radpipe.svc:9000"
    )
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # Every app's model has an InferenceService of the name the app refers to.
    served = {d["metadata"]["name"] for d in of_kind(default_render, "InferenceService")}
    for app in of_kind(default_render, "AnalysisApp"):
        for model in app["spec"]["models"]:
            assert model["inferenceService"] in served


def test_network_policies_cover_every_pod(production_render: list[Doc]) -> None:
    docs = production_render
    policies = of_kind(docs, "NetworkPolicy")

    def selected(namespace: str, labels: dict[str, str]) -> list[Doc]:
        found = []
        for policy in policies:
            if policy["metadata"]["namespace"] != namespace:
                continue
            selector = policy["spec"]["podSelector"]
            if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
                continue
            exprs = selector.get("matchExpressions", [])
            if any(
                (e["operator"] == "In" and labels.get(e["key"]) not in e["values"])
                or (e["operator"] == "Exists" and e["key"] not in labels)
                for e in exprs
            ):
                continue
            found.append(policy)
        return found

    pods = [
        (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]
    # The stage pods the operator creates, and the KServe predictor pods.
    stage = names.stage_labels("glioma-1", "0f0e", "fetch", 1)
    pods += [("radiology", stage), ("research", stage)]
    pods.append(("radiology", {"serving.kserve.io/inferenceservice": "glioma-unet"}))
    for namespace, labels in pods:
        found = selected(namespace, labels)
        assert found, f"no NetworkPolicy selects {labels} in {namespace}"
        types = {t for p in found for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}
    # Stage pods: C-MOVE is configured, so the PACS (and only its CIDR) may connect in.
    stage_policy = find(docs, "NetworkPolicy", "radpipe-stage", "radiology")
    (ingress,) = stage_policy["spec"]["ingress"]
    assert ingress["from"] == [{"ipBlock": {"cidr": "10.10.0.0/16"}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 11113}]
    egress_cidrs = {
        peer["ipBlock"]["cidr"]
        for rule in stage_policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }
    assert {"10.0.0.1/32", "10.20.30.0/24", "10.10.0.0/16", "10.10.5.25/32"} <= egress_cidrs


def intake_objects(docs: list[Doc]) -> list[tuple[str, str]]:
    """(kind, name) of every object of the receiver (component label ``intake``)."""
    return [
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "intake"
    ]


def test_intake_is_off_by_default(default_render: list[Doc]) -> None:
    assert intake_objects(default_render) == []
    assert not [d for d in default_render if "intake" in d["metadata"]["name"]]


def test_intake_renders_the_receiver_and_its_parts(production_render: list[Doc]) -> None:
    assert sorted(intake_objects(production_render)) == [
        ("ConfigMap", "radpipe-intake-rules"),
        ("Deployment", "radpipe-intake"),
        ("NetworkPolicy", "radpipe-intake"),
        ("Role", "radpipe-intake"),
        ("RoleBinding", "radpipe-intake"),
        ("Service", "radpipe-intake"),
        ("ServiceAccount", "radpipe-intake"),
    ]


def test_intake_deployment_runs_the_receiver_as_configured(
    production_render: list[Doc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radpipe.api.apps import load_apps
    from radpipe.intake.cli import receive
    from radpipe.intake.rules import load_rules

    docs = production_render
    deployment = find(docs, "Deployment", "radpipe-intake", "radpipe")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "radpipe-intake"
    (container,) = pod["containers"]
    assert container["image"] == "registry.hospital.example/radpipe/radpipe/operator:0.1.0"
    # `radpipe receive` accepts the arguments, and they ask for cluster mode
    assert container["args"][0] == "receive"
    assert receive.make_context("receive", list(container["args"][1:])).params["cluster"] is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"dicom": 11112}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] == "dicom"
    # The same credentials and config file as the other Deployments.
    env = env_of(container)
    web_env = env_of(
        find(docs, "Deployment", "radpipe-web")["spec"]["template"]["spec"]["containers"][0]
    )
    for name in (
        "RADPIPE_CONFIG",
        "RADPIPE_STORE__S3__ACCESS_KEY",
        "RADPIPE_STORE__S3__SECRET_KEY",
    ):
        assert env[name] == web_env[name]
    # The environment and the mounted files make a valid radpipe configuration.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == "radpipe-intake-rules"
    rules_file = Path(env["RADPIPE_INTAKE__RULES_FILE"])
    assert rules_file.parent == Path(mounts["rules"])
    rules_map = find(docs, "ConfigMap", "radpipe-intake-rules")
    local_rules = tmp_path / rules_file.name
    local_rules.write_text(rules_map["data"][rules_file.name])
    config = yaml.safe_load(find(docs, "ConfigMap", "radpipe-config")["data"]["radpipe.yaml"])
    for key in [k for k in __import__("os").environ if k.startswith("RADPIPE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("RADPIPE_INTAKE__") or key == "RADPIPE_LOG_LEVEL":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("RADPIPE_INTAKE__RULES_FILE", str(local_rules))
    settings = Settings(**config)
    intake = settings.intake
    assert intake.submit_to == "cluster" and intake.namespace == "radiology"
    assert intake.ae_title == "RADPIPE-IN" and intake.port == 11112 and intake.bind == "0.0.0.0"
    assert intake.allowed_calling_aes == ["HOSPPACS", "CT-ER-1", "MR-3T-1"]
    assert intake.quiet_period_seconds == 45 and intake.spool_retention_hours == 72
    assert intake.spool_cleanup_interval_seconds == 600
    # DICOM over TLS from the Secret, clients verified against its CA
    assert intake.tls is not None and intake.tls.verify
    tls_mount = Path(mounts["tls"])
    assert (intake.tls.cert_file, intake.tls.key_file, intake.tls.ca_file) == (
        tls_mount / "tls.crt",
        tls_mount / "tls.key",
        tls_mount / "ca.crt",
    )
    assert volumes["tls"]["secret"]["secretName"] == "radpipe-intake-tls"
    rules = load_rules(intake.rules, intake.rules_file, load_apps(settings.apps_dir))
    assert [(r.name, r.app, r.priority.value) for r in rules.rules] == [
        ("ct-head-bleed", "hemorrhage", "stat"),
        ("mr-brain-tumour", "glioma", "routine"),
    ]
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
    assert len(checksum) == 64


def test_intake_rbac_is_only_what_the_submitter_needs(production_render: list[Doc]) -> None:
    from radpipe.intake.submitter import CLUSTER_RULES

    docs = production_render
    role = find(docs, "Role", "radpipe-intake")
    assert role["metadata"]["namespace"] == "radiology"
    assert (
        rule_set(role["rules"])
        == rule_set(CLUSTER_RULES)
        == {
            ("radpipe.io", "analysisjobs", "create"),
            ("radpipe.io", "analysisjobs", "get"),
            ("radpipe.io", "analysisjobs", "list"),
        }
    )
    binding = find(docs, "RoleBinding", "radpipe-intake")
    assert binding["metadata"]["namespace"] == "radiology"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "radpipe-intake",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "radpipe-intake", "namespace": "radpipe"}
    ]
    # bound nowhere else, and no cluster-wide grant
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for doc in of_kind(docs, kind):
            if doc is not binding:
                assert "radpipe-intake" not in {s["name"] for s in doc["subjects"]}, doc


def test_intake_service_and_network_policy(production_render: list[Doc]) -> None:
    docs = production_render
    service = find(docs, "Service", "radpipe-intake")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == ["10.10.0.0/16"]
    assert spec["ports"] == [
        {"name": "dicom", "port": 11112, "targetPort": "dicom", "protocol": "TCP"}
    ]
    pod_labels = find(docs, "Deployment", "radpipe-intake")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert all(pod_labels[k] == v for k, v in spec["selector"].items())
    assert service["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true"
    }
    policy = find(docs, "NetworkPolicy", "radpipe-intake")
    assert policy["spec"]["podSelector"]["matchLabels"] == spec["selector"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["from"] == [
        {"ipBlock": {"cidr": "10.10.0.0/16"}},
        {"ipBlock": {"cidr": "10.30.1.0/24"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dicom-router"}}},
    ]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 11112}]
    egress_cidrs = {
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }
    assert egress_cidrs == {"10.0.0.1/32", "10.20.30.0/24"}  # API server, S3: nothing else


def test_intake_defaults_with_a_cluster_ip_service(helm: Helm) -> None:
    docs = helm.template(sets=["intake.enabled=true", "intake.allowedCallingAEs={CT1}"], crds=False)
    service = find(docs, "Service", "radpipe-intake")
    assert service["spec"]["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in service["spec"]
    policy = find(docs, "NetworkPolicy", "radpipe-intake")
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 11112}]}]
    role = find(docs, "Role", "radpipe-intake")
    assert role["metadata"]["namespace"] == "radpipe"  # the web app's job namespace
    rules = yaml.safe_load(find(docs, "ConfigMap", "radpipe-intake-rules")["data"]["rules.yaml"])
    assert rules == {"rules": []}
    pod = find(docs, "Deployment", "radpipe-intake")["spec"]["template"]["spec"]
    assert not [e for e in pod["containers"][0]["env"] if "TLS" in e["name"]]
    assert "tls" not in {v["name"] for v in pod["volumes"]}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["intake.enabled=true"], "allowedCallingAEs"),
        (
            ["intake.enabled=true", "intake.allowedCallingAEs={CT1}", "intake.jobNamespace=x"],
            "not one of the job namespaces",
        ),
        (["intake.aeTitle=AN-AE-TITLE-TOO-LONG"], "aeTitle"),
        (["intake.rules[0].name=r1"], "app"),
        (["intake.service.type=Ingress"], "type"),
        (["intake.tls.enabled=true"], "secretName"),
        (["networkPolicy.intake.cidrs={10.0.0.1}"], "cidrs"),
        (["config.pacs.hospital-pacs.ae_title=AN-AE-TITLE-TOO-LONG"], "ae_title"),
        (["config.branding.primary_color=blue"], "primary_color"),
        (["objectStore.minio.enabled=false"], "endpoint"),
        (["models.inferenceServices.glioma-unet.canaryTrafficPercent=150"], "canaryTrafficPercent"),
        (["operator.retention=forever"], "retention"),
        (["apps.install={glioma,radiomics}"], "install"),
        (["models.namespace=elsewhere"], "not one of the job namespaces"),
        (["web.oidc.issuer=https://idp.example"], "clientId"),
    ],
)
def test_bad_values_are_refused(helm: Helm, sets: list[str], message: str) -> None:
    assert message in helm.template_error(*sets)


def test_web_single_replica_has_no_blocking_budget(helm: Helm) -> None:
    docs = helm.template(sets=["web.replicas=1"], crds=False)
    assert [d["metadata"]["name"] for d in of_kind(docs, "PodDisruptionBudget")] == [
        "radpipe-operator"
    ]


def test_notes_tell_what_to_do_next(helm: Helm, tmp_path: Path) -> None:
    # `helm install --dry-run` needs a cluster; render NOTES.txt as an ordinary template
    # of a copy of the chart instead.
    chart = tmp_path / "radpipe"
    shutil.copytree(CHART, chart)
    notes_txt = chart / "templates" / "NOTES.txt"
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "notes" -}}\n' + notes_txt.read_text() + "\n{{- end -}}\n"
    )
    notes_txt.unlink()
    (chart / "templates" / "notes.yaml").write_text(
        'kind: Notes\ntext: |\n{{ include "notes" . | indent 2 }}\n'
    )
    result = helm.run(
        "template",
        "radpipe",
        str(chart),
        "--namespace",
        "radpipe",
        "--values",
        str(PRODUCTION_VALUES),
        "--show-only",
        "templates/notes.yaml",
    )
    notes = yaml.safe_load(result.stdout)["text"]
    assert "kubectl -n radpipe rollout status deployment/radpipe-operator" in notes
    assert "s3://radpipe-models/glioma-unet/0.2.0/glioma-unet/" in notes
    assert "hospital-pacs: dimse HOSPPACS@pacs.hospital.example:104" in notes
    assert "kubectl -n radiology get analysisjobs -w" in notes
    assert "https://radpipe.hospital.example/" in notes
    assert "kubectl apply --server-side -f charts/radpipe/crds/" in notes
    assert "(C-STORE over TLS, with a client certificate) to AE title RADPIPE-IN at\n" in notes
    assert "     radpipe-intake.radpipe.svc:11112 (Service type LoadBalancer" in notes
    assert "from the calling AE titles HOSPPACS, CT-ER-1, MR-3T-1 only. 2 routing rule(s)" in notes
    assert "deleted 72 h after their jobs have ended" in notes
