"""CustomResourceDefinitions generated from the pydantic models in :mod:`radpipe.api.models`.

The models are the one source of truth: this module turns their JSON schema into the
*structural* OpenAPI v3 schema Kubernetes wants (no ``$ref``, no ``anyOf`` for optional
fields, ``x-kubernetes-preserve-unknown-fields`` for free-form maps, ``nullable`` instead
of ``null`` types) and wraps it in a CRD with a status subresource, printer columns and
short names. CEL rules (``x-kubernetes-validations``) come from the models'
``json_schema_extra``. ``radpipe operator crds`` writes the YAML to ``crds/``; a unit test
fails when the committed YAML is stale.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from radpipe.api.models import API_GROUP, API_VERSION, AnalysisApp, AnalysisJob

#: JSON-schema keywords that have no place in a CRD schema.
_DROP = {"title", "$schema", "examples", "const", "discriminator"}
#: Generated files start with this, so nobody edits them by hand.
HEADER = (
    "# Generated from operator/radpipe/api/models.py by `radpipe operator crds`. Do not edit.\n"
)


@dataclass(frozen=True)
class PrinterColumn:
    """One ``kubectl get`` column."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def wire(self) -> dict[str, Any]:
        """The additionalPrinterColumns entry."""
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class CrdInfo:
    """What a CRD needs beyond the model's schema."""

    model: type[BaseModel]
    kind: str
    plural: str
    singular: str
    scope: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    status: bool = True
    categories: tuple[str, ...] = ("radpipe",)
    top_level_rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The CRD's object name, ``<plural>.<group>``."""
        return f"{self.plural}.{API_GROUP}"

    @property
    def filename(self) -> str:
        """Its file under crds/."""
        return f"{API_GROUP}_{self.plural}.yaml"


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")

CRDS: tuple[CrdInfo, ...] = (
    CrdInfo(
        model=AnalysisJob,
        kind="AnalysisJob",
        plural="analysisjobs",
        singular="analysisjob",
        scope="Namespaced",
        short_names=("aj", "ajob"),
        columns=(
            PrinterColumn("Phase", ".status.phase", description="where the job is"),
            PrinterColumn("Stage", ".status.activeStage", description="stage running or next"),
            PrinterColumn("App", ".spec.app"),
            PrinterColumn("Accession", ".spec.accession"),
            PrinterColumn("Priority", ".spec.priority", priority=1),
            PrinterColumn("Message", ".status.message", priority=1),
            AGE,
        ),
    ),
    CrdInfo(
        model=AnalysisApp,
        kind="AnalysisApp",
        plural="analysisapps",
        singular="analysisapp",
        scope="Cluster",
        short_names=("aapp",),
        columns=(
            PrinterColumn("Title", ".spec.title"),
            PrinterColumn("Modality", ".spec.modality"),
            AGE,
        ),
        status=False,
    ),
)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s and rewrite JSON-schema idioms into structural OpenAPI v3."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        # Siblings of $ref (description, default) win over the definition's own.
        target.update(node)
        node = target
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) < len(node["anyOf"]):
            node["nullable"] = True
        if len(options) == 1:
            del node["anyOf"]
            merged = dict(options[0])
            merged.update(node)
            node = merged
        if node.get("default", "unset") is None:
            del node["default"]
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = dict(node.pop("allOf")[0])
        merged.update(node)
        node = merged
    for key in _DROP & node.keys():
        del node[key]
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if node.get("type") == "object":
        extra = node.get("additionalProperties")
        if extra is True or (extra == {} and "properties" not in node):
            node.pop("additionalProperties")
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif extra is False:
            # Structural schemas refuse `additionalProperties: false`; unknown fields are
            # pruned, and kubectl's strict field validation reports them instead.
            node.pop("additionalProperties")
    resolved = {key: _resolve(value, defs) for key, value in node.items() if key != "$defs"}
    if "properties" in resolved:
        resolved["properties"] = {
            name: _resolve(value, defs) for name, value in node["properties"].items()
        }
    return resolved


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a resource model, for a CRD version."""
    raw = model.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    # apiVersion, kind and metadata are the API server's: it validates them itself.
    properties["apiVersion"] = {"type": "string", "description": "radpipe.io/v1alpha1"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    schema["required"] = [r for r in schema.get("required", []) if r in ("spec",)]
    return schema


def crd(info: CrdInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    schema = openapi_schema(info.model)
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": [column.wire() for column in info.columns],
    }
    if info.status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.name,
            "labels": {"app.kubernetes.io/part-of": "radpipe"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": info.scope,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "versions": [version],
        },
    }


def render(document: dict[str, Any]) -> str:
    """YAML text of one generated document, with the do-not-edit header."""
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)


#: The example AnalysisJob of each bundled app: a study the synthetic data set carries.
EXAMPLE_ACCESSIONS = {
    "glioma": "RPGLIOMA0001",
    "hemorrhage": "RPHEMOR0001",
    "metastasis": "RPMETS0001",
}


def example_job(app: AnalysisApp) -> dict[str, Any]:
    """A ready-to-apply AnalysisJob for ``app`` (namespace from kubectl's -n)."""
    name = app.metadata.name
    options = {
        key: prop["default"]
        for key, prop in app.spec.options.get("properties", {}).items()
        if isinstance(prop, dict) and "default" in prop
    }
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "AnalysisJob",
        "metadata": {"name": f"{name}-example"},
        "spec": {
            "accession": EXAMPLE_ACCESSIONS.get(name, "RP0001"),
            "app": name,
            "priority": "routine",
            "options": options,
            "source": {"pacs": "hospital-pacs"},
            "delivery": {"pacs": ["hospital-pacs"], "report": True, "seg": True, "sr": True},
        },
    }


def example_files() -> dict[str, str]:
    """examples/<app>.yaml: the bundled AnalysisApp and an AnalysisJob using it."""
    from radpipe.api.apps import bundled_apps

    files = {}
    for name, app in sorted(bundled_apps().items()):
        text = HEADER.replace("models.py", f"apps/{name}.yaml")
        text += yaml.safe_dump_all([app.wire(), example_job(app)], sort_keys=False, width=100)
        files[f"examples/{name}.yaml"] = text
    return files


def generated_files() -> dict[str, str]:
    """Relative path -> content of every generated file (CRDs, then examples)."""
    files = {info.filename: render(crd(info)) for info in CRDS}
    files.update(example_files())
    return files


def write_crds(directory: Path) -> list[Path]:
    """(Re)write the CRD files and examples into ``directory``; returns the paths written."""
    written = []
    for name, text in generated_files().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def stale_files(directory: Path) -> list[str]:
    """Names of CRD files in ``directory`` that differ from what the models generate."""
    return [
        name
        for name, text in generated_files().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
