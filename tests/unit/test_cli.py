"""The ``radpipe`` command line, in-process through click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from radpipe.cli import cli
from radpipe.config import Settings


def _config(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "radpipe.yaml"
    path.write_text(
        f"data_dir: {settings.data_dir}\n"
        f"apps_dir: {settings.apps_dir}\n"
        "runner: {retry_backoff_seconds: 0.01}\n"
    )
    return path


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "status", "stage", "apps", "config", "jobs"):
        assert command in result.output


def test_console_script_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "radpipe.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "radpipe, version" in done.stdout


def test_run_status_and_stage_run(toy_app: Settings, tmp_path: Path) -> None:
    config = _config(toy_app, tmp_path)
    runner = CliRunner()
    ran = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "run",
            "--accession",
            "ACC9",
            "--app",
            "toy",
            "--json",
            "--no-progress",
            "--option",
            "size=64",
        ],
    )
    assert ran.exit_code == 0, ran.output
    doc = json.loads(ran.stdout[ran.stdout.index("{") :])
    assert doc["phase"] == "Succeeded"
    assert doc["app"] == "toy" and doc["accession"] == "ACC9"
    assert [st["name"] for st in doc["stages"]] == ["toy-produce", "toy-consume"]
    produce = doc["stages"][0]
    assert produce["state"] == "Succeeded" and produce["seconds"] is not None
    assert produce["outputs"]["data.bin"]["size"] == 64
    assert produce["outputs"]["data.bin"]["key"].endswith("/toy-produce/data.bin")
    assert doc["findings"] == {"toyBytes": 64}
    uid = doc["job"]

    shown = runner.invoke(cli, ["--config", str(config), "status", uid])
    assert shown.exit_code == 0
    assert "Succeeded" in shown.output and "toy-consume" in shown.output

    again = runner.invoke(
        cli, ["--config", str(config), "stage", "run", "--job", uid, "--stage", "toy-produce"]
    )
    assert again.exit_code == 0
    assert f"{uid} toy-produce: already complete" in again.output

    listed = runner.invoke(cli, ["--config", str(config), "jobs", "--json"])
    assert [j["metadata"]["name"] for j in json.loads(listed.output)] == [uid]


def test_failed_job_exits_nonzero_with_reason(toy_app: Settings, tmp_path: Path) -> None:
    config = _config(toy_app, tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "run",
            "--accession",
            "A",
            "--app",
            "toy",
            "--no-progress",
            "--option",
            "failPermanent=true",
        ],
    )
    assert result.exit_code == 1
    assert "the toy input is unusable" in result.output


def test_bad_requests_get_clear_errors_not_tracebacks(toy_app: Settings, tmp_path: Path) -> None:
    config = _config(toy_app, tmp_path)
    runner = CliRunner()
    bad_accession = runner.invoke(
        cli, ["--config", str(config), "run", "--accession", "bad accession!", "--app", "toy"]
    )
    assert bad_accession.exit_code == 1
    assert "invalid request: accession" in bad_accession.output
    assert "Traceback" not in bad_accession.output
    unknown_app = runner.invoke(
        cli, ["--config", str(config), "run", "--accession", "A1", "--app", "brainz"]
    )
    assert "unknown app 'brainz'" in unknown_app.output
    missing = runner.invoke(cli, ["--config", str(config), "status", "rp-nothere"])
    assert missing.exit_code == 1 and "no job 'rp-nothere'" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("store: {backend: tape}\n")
    bad_config = runner.invoke(cli, ["--config", str(broken), "jobs"])
    assert bad_config.exit_code == 1 and "store.backend" in bad_config.output


def test_apps_and_config_commands(settings: Settings) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["apps", "list"])
    assert listed.exit_code == 0
    for app in ("glioma", "hemorrhage", "metastasis"):
        assert app in listed.output
    shown = runner.invoke(cli, ["apps", "show", "glioma"])
    assert "inferenceService: glioma-unet" in shown.output
    schema = json.loads(runner.invoke(cli, ["config", "schema"]).output)
    assert "store" in schema["properties"]
    config = runner.invoke(cli, ["config", "show"])
    assert "backend: local" in config.output


def test_held_job_exits_3_and_release_finishes_it(toy_app: Settings, tmp_path: Path) -> None:
    config = _config(toy_app, tmp_path)
    runner = CliRunner()
    held = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "run",
            "--accession",
            "A",
            "--app",
            "toy",
            "--no-progress",
            "--option",
            "holdOnce=true",
            "--json",
        ],
    )
    assert held.exit_code == 3
    uid = json.loads(held.stdout[held.stdout.index("{") :])["job"]
    assert f"radpipe release {uid}" in held.output
    released = runner.invoke(cli, ["--config", str(config), "release", uid, "--no-progress"])
    assert released.exit_code == 0, released.output
    assert "Succeeded" in released.output
