"""Retention on deletion, the admission queue, RBAC shape and the operator CLI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from click.testing import CliRunner

from radpipe.api.models import Phase
from radpipe.cli import cli
from radpipe.kube.handlers import delete_artifacts
from radpipe.kube.queue import Entry, Ledger, Slot
from radpipe.kube.rbac import manifests
from radpipe.store import LocalStore


def test_retention_settings(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    op: Any = SimpleNamespace(store=store)
    for key in ("jobs/u1/fetch/a.bin", "jobs/u1/report/report.pdf", "jobs/u2/fetch/a.bin"):
        store.put_bytes(key, b"x")
    assert delete_artifacts(op, "u1", "keep") == 0
    assert delete_artifacts(op, "u1", "keep-reports") == 1
    assert store.list("jobs/u1/") == ["jobs/u1/report/report.pdf"]
    assert delete_artifacts(op, "u1", "delete") == 1
    assert store.list("jobs/") == ["jobs/u2/fetch/a.bin"]


def entry(rank: int, created: str) -> Entry:
    return Entry(rank, created, Slot.WAITING, Phase.PENDING)


def test_admission_takes_priority_then_age() -> None:
    ledger = Ledger()
    assert ledger.admit("ns", "r-old", entry(2, "t1"), limit=1) == (True, 0)
    assert ledger.admit("ns", "r-new", entry(2, "t3"), limit=1) == (False, 0)
    assert ledger.admit("ns", "stat", entry(0, "t5"), limit=1) == (False, 0)
    assert ledger.next_waiting("ns", 2) == ["stat"]
    ledger.set("ns", "r-old", Entry(2, "t1", Slot.IDLE, Phase.SUCCEEDED))
    assert ledger.admit("ns", "r-new", entry(2, "t3"), limit=1) == (False, 1)
    assert ledger.admit("ns", "stat", entry(0, "t5"), limit=1) == (True, 0)
    _phases, waiting, running = ledger.counts()
    assert waiting == {"ns": 1} and running == {"ns": 1}


def test_stage_pods_may_only_read() -> None:
    docs = manifests("radpipe", ["rad"])
    stage_roles = [
        d for d in docs if d["kind"] == "ClusterRole" and "stage" in d["metadata"]["name"]
    ]
    verbs = {verb for role in stage_roles for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get"}


def test_crds_command_checks_and_writes(tmp_path: Path) -> None:
    runner = CliRunner()
    stale = runner.invoke(cli, ["operator", "crds", "--check", "--out", str(tmp_path)])
    assert stale.exit_code == 1 and "stale" in stale.output
    written = runner.invoke(cli, ["operator", "crds", "--out", str(tmp_path)])
    assert written.exit_code == 0 and (tmp_path / "radpipe.io_analysisjobs.yaml").is_file()
    fresh = runner.invoke(cli, ["operator", "crds", "--check", "--out", str(tmp_path)])
    assert fresh.exit_code == 0, fresh.output
