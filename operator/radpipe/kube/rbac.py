"""Least-privilege ServiceAccounts and RBAC for the operator and the stage pods.

The operator may read AnalysisApps and InferenceServices, read/patch AnalysisJobs (kopf's
finalizer and annotations) and their status, manage batch Jobs, read pods and their logs
(failure reasons), and post Events. A stage pod may only *read* its AnalysisJob, the
AnalysisApps and the InferenceServices: it writes nothing to the API server (its result
goes to the artifact store, and the operator updates the status).
"""

from __future__ import annotations

from typing import Any

from radpipe.api.models import API_GROUP

OPERATOR_ACCOUNT = "radpipe-operator"
STAGE_ACCOUNT = "radpipe-stage-runner"
KSERVE_GROUP = "serving.kserve.io"
LABELS = {"app.kubernetes.io/part-of": "radpipe"}

Rule = dict[str, list[str]]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Rule:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


OPERATOR_RULES: list[Rule] = [
    _rule([API_GROUP], ["analysisjobs"], ["get", "list", "watch", "patch", "update"]),
    _rule([API_GROUP], ["analysisjobs/status"], ["get", "patch", "update"]),
    _rule([API_GROUP], ["analysisapps"], ["get", "list", "watch"]),
    _rule(["batch"], ["jobs"], ["get", "list", "watch", "create", "delete"]),
    _rule([""], ["pods"], ["get", "list"]),
    _rule([""], ["pods/log"], ["get"]),
    _rule([""], ["events"], ["create", "patch"]),
    _rule(["events.k8s.io"], ["events"], ["create", "patch"]),
    _rule([KSERVE_GROUP], ["inferenceservices"], ["get"]),
    # kopf discovers resources and namespaces; read-only.
    _rule([""], ["namespaces"], ["get", "list", "watch"]),
    _rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["get", "list", "watch"]),
]

#: Namespaced reads of a stage pod (bound per job namespace).
STAGE_RULES: list[Rule] = [
    _rule([API_GROUP], ["analysisjobs"], ["get"]),
    _rule([KSERVE_GROUP], ["inferenceservices"], ["get"]),
]
#: AnalysisApps are cluster-scoped: this one read needs a ClusterRoleBinding.
STAGE_CLUSTER_RULES: list[Rule] = [_rule([API_GROUP], ["analysisapps"], ["get"])]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _account(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)}


def _subject(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def manifests(namespace: str, job_namespaces: list[str]) -> list[dict[str, Any]]:
    """Every RBAC object: the operator's in ``namespace``, a stage account per job namespace."""
    rbac = "rbac.authorization.k8s.io/v1"
    docs: list[dict[str, Any]] = [
        _account(OPERATOR_ACCOUNT, namespace),
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(OPERATOR_ACCOUNT),
            "rules": OPERATOR_RULES,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(OPERATOR_ACCOUNT),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_ACCOUNT,
            },
            "subjects": [_subject(OPERATOR_ACCOUNT, namespace)],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(STAGE_ACCOUNT),
            "rules": STAGE_RULES,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(f"{STAGE_ACCOUNT}-apps"),
            "rules": STAGE_CLUSTER_RULES,
        },
    ]
    for job_namespace in job_namespaces:
        docs.append(_account(STAGE_ACCOUNT, job_namespace))
        # One binding per namespace, so adding a namespace never rewrites another's.
        docs.append(
            {
                "apiVersion": rbac,
                "kind": "ClusterRoleBinding",
                "metadata": _meta(f"{STAGE_ACCOUNT}-apps-{job_namespace}"),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{STAGE_ACCOUNT}-apps",
                },
                "subjects": [_subject(STAGE_ACCOUNT, job_namespace)],
            }
        )
        docs.append(
            {
                "apiVersion": rbac,
                "kind": "RoleBinding",
                "metadata": _meta(STAGE_ACCOUNT, job_namespace),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": STAGE_ACCOUNT,
                },
                "subjects": [_subject(STAGE_ACCOUNT, job_namespace)],
            }
        )
    return docs
