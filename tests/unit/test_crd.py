"""The CRDs in crds/ are generated from the pydantic models and must not go stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from radpipe.api.crd import CRDS, crd, generated_files, openapi_schema, stale_files
from radpipe.api.models import AnalysisJob, JobSpec, JobStatus, StageStatus

REPO = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk(value, f"{path}[{i}]"))
    return found


def test_committed_crds_and_examples_are_up_to_date() -> None:
    stale = stale_files(REPO / "crds")
    assert not stale, f"run `radpipe operator crds` and commit: stale {stale}"


def test_schemas_are_structural() -> None:
    for info in CRDS:
        schema = openapi_schema(info.model)
        for path, node in walk(schema):
            assert "$ref" not in node, path
            assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path
            assert node.get("additionalProperties") is not False, path
            assert node.get("type") != "null", path
            if "properties" in node:
                assert node.get("type") == "object", path


def test_job_crd_has_status_columns_short_names_and_cel_rules() -> None:
    job = crd(CRDS[0])
    version = job["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][:4] == [
        "Phase",
        "Stage",
        "App",
        "Accession",
    ]
    assert "Age" in [c["name"] for c in version["additionalPrinterColumns"]]
    assert "aj" in job["spec"]["names"]["shortNames"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("oldSelf.accession" in r for r in rules)
    assert "x-kubernetes-validations" in spec["properties"]["accession"]
    assert spec["properties"]["priority"]["enum"] == ["stat", "urgent", "routine"]
    # every model field reaches the CRD (pruning would drop it silently otherwise)
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    for model, schema in ((JobSpec, spec), (JobStatus, status), (StageStatus, None)):
        props = (
            schema["properties"]
            if schema
            else status["properties"]["stages"]["items"]["properties"]
        )
        for name, field in model.model_fields.items():
            assert (field.alias or name) in props, name
    assert "studyInstanceUID" in spec["properties"]


def test_examples_parse_as_models() -> None:
    from radpipe.api.models import AnalysisApp

    for name, text in generated_files().items():
        if not name.startswith("examples/"):
            continue
        app_doc, job_doc = list(yaml.safe_load_all(text))
        AnalysisApp.model_validate(app_doc)
        AnalysisJob.model_validate(job_doc)
