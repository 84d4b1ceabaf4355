"""Pieces of the web app on their own: the options form from an app's schema, the user
file and password hashes, OIDC role mapping, the `radpipe web add-user` command, and the
cluster backend's calls to the Kubernetes API (against a recording stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from radpipe.api.apps import bundled_apps
from radpipe.api.models import JobSpec
from radpipe.cli import cli
from radpipe.config import Settings
from radpipe.local.runner import JobNotFound, SubmitError
from radpipe.web.auth import oidc_user
from radpipe.web.backend import BackendError
from radpipe.web.cluster import RELEASE, ClusterBackend
from radpipe.web.forms import option_fields, parse_request
from radpipe.web.users import User, UserFile, hash_password, verify_password


def test_option_fields_follow_the_app_schema() -> None:
    glioma = bundled_apps()["glioma"]
    (edema,) = option_fields(glioma)
    assert (edema.kind, edema.label, edema.default) == ("checkbox", "Report oedema volume", True)
    assert edema.input_name == "opt.glioma.includeEdema"


def test_parse_request_coerces_options_and_reports_every_problem() -> None:
    apps = bundled_apps()
    form, spec = parse_request(
        {"accession": " ACC.1 ", "app": "glioma", "priority": "stat", "email": "a@b.org"}, apps
    )
    assert spec is not None and not form.errors
    assert spec.accession == "ACC.1"
    assert spec.options == {"includeEdema": False}  # an unticked box sends nothing
    assert spec.delivery.email == ["a@b.org"]
    form, spec = parse_request({"accession": "-bad", "app": "nope", "priority": "now"}, apps)
    assert spec is None
    assert set(form.errors) == {"accession", "app", "priority"}


def test_passwords_are_salted_scrypt_hashes(tmp_path: Path) -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert stored != hash_password("correct horse")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "md5$abc")


def test_user_file_refuses_unknown_roles(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump({"users": [{"name": "x", "password": "p", "roles": ["god"]}]}))
    with pytest.raises(Exception, match="unknown roles"):
        UserFile(path).authenticate("x", "p")


def test_roles_rank_upwards() -> None:
    admin = User(name="a", roles=("admin",))
    requester = User(name="r", roles=("requester",))
    assert admin.has("radiologist") and admin.has("requester")
    assert not requester.has("radiologist")


def test_oidc_groups_map_to_roles(settings: Settings) -> None:
    settings.web.oidc_roles_claim = "groups"
    settings.web.oidc_role_map = {"rad-staff": "radiologist"}
    claims = {"sub": "u1", "preferred_username": "dr.who", "groups": ["rad-staff", "x"]}
    user = oidc_user(settings, claims)
    assert user is not None and user.roles == ("radiologist",) and user.via == "oidc"
    assert oidc_user(settings, {"sub": "u2", "groups": ["cleaners"]}) is None
    settings.web.oidc_default_role = "requester"
    fallback = oidc_user(settings, {"sub": "u2", "groups": ["cleaners"]})
    assert fallback is not None and fallback.roles == ("requester",)


def test_add_user_command_writes_a_hashed_entry(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    result = CliRunner().invoke(
        cli,
        ["web", "add-user", "dr.a", "--role", "radiologist", "--password-stdin", "--users", path],
        input="s3cret-password\n",
    )
    assert result.exit_code == 0, result.output
    entry = yaml.safe_load(path.read_text())["users"][0]
    assert entry["roles"] == ["radiologist"] and entry["password"].startswith("scrypt$")
    user = UserFile(path).authenticate("dr.a", "s3cret-password")
    assert user is not None and user.has("radiologist")
    short = CliRunner().invoke(
        cli, ["web", "add-user", "b", "--password-stdin", "--users", path], input="short\n"
    )
    assert short.exit_code != 0 and "at least 8" in short.output


class FakeCustomObjects:
    """Records CustomObjectsApi calls and keeps AnalysisJobs in a dict, as the API would."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def list_cluster_custom_object(self, group: str, version: str, plural: str) -> dict[str, Any]:
        self.calls.append(("list_cluster", (group, version, plural)))
        return {"items": [bundled_apps()["glioma"].wire()]}

    def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        group, version, namespace, plural, body = args
        self.calls.append(("create", (group, version, namespace, plural)))
        body = {**body, "metadata": {**body["metadata"], "uid": "0f0e-uid", "resourceVersion": "1"}}
        self.objects[body["metadata"]["name"]] = body
        return body

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name = args[-1]
        if name not in self.objects:
            error = Exception("not found")
            error.status = 404  # type: ignore[attr-defined]
            raise error
        return self.objects[name]

    def list_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return {"items": list(self.objects.values())}

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name, patch = args[-2], args[-1]
        self.calls.append(("patch", (name,)))
        obj = self.objects[name]
        for section, values in patch.items():
            for key, value in values.items():
                if isinstance(value, dict):
                    obj[section].setdefault(key, {}).update(value)
                else:
                    obj[section][key] = value
        return obj


def test_cluster_backend_creates_analysisjob_resources(settings: Settings) -> None:
    api = FakeCustomObjects()
    settings.web.namespace = "imaging"
    backend = ClusterBackend(settings, api=api)
    job = backend.submit(JobSpec(accession="ACC9", app="glioma"), requested_by="rex")
    assert api.calls[-1] == ("create", ("radpipe.io", "v1alpha1", "imaging", "analysisjobs"))
    created = api.objects[job.metadata.name]
    assert created["kind"] == "AnalysisJob" and created["spec"]["accession"] == "ACC9"
    assert created["metadata"]["annotations"]["radpipe.io/requested-by"] == "rex"
    # Found by name and by the uid the API server gave it (the artifact-store id).
    assert backend.get(job.metadata.name).uid == "0f0e-uid"
    assert backend.get("0f0e-uid").metadata.name == job.metadata.name
    assert [j.metadata.name for j in backend.list_jobs()] == [job.metadata.name]
    assert backend.cancel("0f0e-uid").spec.cancel is True
    with pytest.raises(BackendError, match="only a waiting delivery"):
        backend.retry_delivery(job.metadata.name)
    api.objects[job.metadata.name]["status"] = {"phase": "DeliveryPending"}
    retried = backend.retry_delivery(job.metadata.name)
    assert RELEASE in retried.metadata.annotations  # the operator's release annotation
    with pytest.raises(JobNotFound):
        backend.get("nope")
    with pytest.raises(SubmitError, match="includeEdema"):
        backend.submit(JobSpec(accession="A", app="glioma", options={"includeEdema": "yes"}), "rex")
