"""The Dockerfiles in images/ (no Docker engine here): a hadolint-style linter on
dockerfile-parse, every file they copy and command they run exists, and skaffold.yaml
names real artifacts and the chart."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.fixtures.tools import REPO

IMAGES = REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
BUILD_TOOLS = {"gcc", "g++", "make", "build-essential", "git", "curl", "wget", "cmake"}
#: Images that serve something a HEALTHCHECK can probe (the stage runner is a batch job).
SERVERS = {"operator", "web", "model-server"}


@dataclass
class Instruction:
    stage: int
    line: int
    name: str
    value: str


def parse(path: Path) -> list[Instruction]:
    parser = DockerfileParser(path=str(path))
    stage = -1
    out = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            stage += 1
        out.append(Instruction(stage, item["startline"] + 1, item["instruction"], item["value"]))
    return out


def lint(path: Path) -> list[str]:
    """hadolint's rules that matter here (numbers as in hadolint), plus ours."""
    problems: list[str] = []
    instructions = parse(path)
    args = {
        i.value.split("=", 1)[0]: i.value.split("=", 1)[1]
        for i in instructions
        if i.name == "ARG" and i.stage == -1 and "=" in i.value
    }
    last_stage = max(i.stage for i in instructions)
    stage_names = set()
    shells_pipefail = set()

    def where(i: Instruction) -> str:
        return f"{path.name}:{i.line}"

    for i in instructions:
        if i.name == "FROM":
            image = i.value.split()[0]
            for name, value in args.items():
                image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
            if " AS " in i.value.upper():
                stage_names.add(i.value.split()[-1])
            if image in stage_names:
                continue
            if ":" not in image and "@" not in image:
                problems.append(f"{where(i)} DL3006 untagged base image {image}")
            if image.endswith(":latest"):
                problems.append(f"{where(i)} DL3007 base image uses latest")
        elif i.name == "ADD":
            problems.append(f"{where(i)} DL3020 use COPY, not ADD")
        elif i.name == "SHELL" and "pipefail" in i.value:
            shells_pipefail.add(i.stage)
        elif i.name in ("ENTRYPOINT", "CMD") and not i.value.startswith("["):
            problems.append(f"{where(i)} DL3025 {i.name} in shell form")
        elif i.name == "RUN":
            run = i.value
            if "|" in run.replace("||", "") and i.stage not in shells_pipefail:
                problems.append(f"{where(i)} DL4006 pipe without SHELL -o pipefail")
            if re.search(r"\bsudo\b", run):
                problems.append(f"{where(i)} DL3004 sudo")
            if re.search(r"\bcd\s", run):
                problems.append(f"{where(i)} DL3003 cd instead of WORKDIR")
            if "apt-get install" in run:
                if "--no-install-recommends" not in run:
                    problems.append(f"{where(i)} DL3015 apt-get without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in run:
                    problems.append(f"{where(i)} DL3009 apt lists not removed")
                if " -y" not in run:
                    problems.append(f"{where(i)} DL3014 apt-get install without -y")
                packages = _apt_packages(run)
                for package in packages:
                    if "=" not in package:
                        problems.append(f"{where(i)} DL3008 apt package {package} not pinned")
                if i.stage == last_stage:
                    tools = {p.split("=")[0] for p in packages} & BUILD_TOOLS
                    if tools:
                        problems.append(f"{where(i)} build tools in the final image: {tools}")
            if re.search(r"\bpip3? install\b", run):
                if "--no-cache-dir" not in run:
                    problems.append(f"{where(i)} DL3042 pip install without --no-cache-dir")
                if "--constraint" not in run and "-c " not in run:
                    problems.append(f"{where(i)} DL3013 pip install without pinned versions")
    final = [i for i in instructions if i.stage == last_stage or i.stage == -1]
    users = [i for i in instructions if i.name == "USER"]
    # Every final target (a Dockerfile may have several) ends as a numeric non-root user.
    targets = _final_targets(instructions)
    for stage in targets:
        stage_users = [u for u in users if u.stage == stage]
        if not stage_users or stage_users[-1].value.split(":")[0] in ("0", "root"):
            problems.append(f"{path.name} DL3002 final stage {stage} does not switch to non-root")
        elif not stage_users[-1].value.split(":")[0].isdigit():
            problems.append(f"{path.name} final USER should be numeric (runAsNonRoot)")
    if last_stage < 1:
        problems.append(f"{path.name} is not a multi-stage build")
    if not any(i.name == "ENTRYPOINT" for i in final + instructions):
        problems.append(f"{path.name} has no ENTRYPOINT")
    return problems


def _apt_packages(run: str) -> list[str]:
    command = run.split("apt-get install", 1)[1].split("&&", 1)[0]
    return [w for w in shlex.split(command.replace("\\\n", " ")) if not w.startswith("-")]


def _final_targets(instructions: list[Instruction]) -> list[int]:
    """Stages nothing else builds FROM or copies from: the images one would ship."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for i in instructions:
        if i.name == "FROM":
            words = i.value.split()
            if len(words) == 3 and words[1].upper() == "AS":
                names[i.stage] = words[2]
            used.add(words[0])
        if i.name == "COPY" and "--from=" in i.value:
            used.add(i.value.split("--from=", 1)[1].split()[0])
    stages = sorted({i.stage for i in instructions if i.stage >= 0})
    return [s for s in stages if names.get(s) not in used]


def ignored(path: str, dockerfile: Path) -> bool:
    """Whether the Dockerfile's own .dockerignore (BuildKit) excludes ``path``."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if not ignore.exists():
        return False
    excluded = False
    for line in ignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            excluded = not negate
    return excluded


def test_there_is_an_image_for_each_part() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == {
        "operator",
        "stage-runner",
        "model-server",
        "web",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lint_is_clean(dockerfile: Path) -> None:
    assert lint(dockerfile) == []


def test_the_linter_catches_what_hadolint_would(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text(
        "FROM python\n"
        "ADD app /app\n"
        "RUN apt-get update && apt-get install gcc | tee log\n"
        "RUN pip install requests\n"
        "ENTRYPOINT radpipe\n"
    )
    codes = {p.split()[1] for p in lint(bad)}
    assert {"DL3006", "DL3020", "DL3015", "DL3009", "DL3008", "DL4006", "DL3042", "DL3013"} <= codes
    assert {"DL3025", "DL3002"} <= codes
    assert any("build tools" in p for p in lint(bad))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_in_the_context(dockerfile: Path) -> None:
    for i in parse(dockerfile):
        if i.name != "COPY" or "--from=" in i.value:
            continue
        *sources, _dest = shlex.split(i.value)
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.name}:{i.line} copies missing {source}"
            assert not ignored(source.rstrip("/"), dockerfile), (
                f"{dockerfile.name}:{i.line}: {source} is excluded by its .dockerignore"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_and_commands_exist(dockerfile: Path) -> None:
    """ENTRYPOINT radpipe + CMD (and the chart's args) are real radpipe commands."""
    from radpipe.cli import cli

    instructions = parse(dockerfile)
    entry = [yaml.safe_load(i.value) for i in instructions if i.name == "ENTRYPOINT"][-1]
    assert entry == ["radpipe"]
    for cmd in [yaml.safe_load(i.value) for i in instructions if i.name == "CMD"]:
        _resolve(cli, cmd)
    name = dockerfile.name.removesuffix(".Dockerfile")
    healthchecks = [i for i in instructions if i.name == "HEALTHCHECK"]
    assert bool(healthchecks) == (name in SERVERS)
    if name == "stage-runner":
        apt = " ".join(i.value for i in instructions if i.name == "RUN")
        assert "dcm2niix=" in apt


def _resolve(group: click.Command, argv: list[str]) -> None:
    """Parse ``argv`` with radpipe's click commands, as the container would."""
    command: Any = group
    ctx = click.Context(group)
    while isinstance(command, click.Group) and argv and argv[0] in command.list_commands(ctx):
        sub = command.get_command(ctx, argv[0])
        assert sub is not None, argv
        command, argv = sub, argv[1:]
    command.make_context(command.name or "radpipe", list(argv))


def test_image_constraints_pin_every_dependency() -> None:
    constraints = IMAGES / "requirements" / "constraints.txt"
    pins = {}
    for line in constraints.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{line!r} is not pinned"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, (
            f"{name} has no pinned version in {constraints} (regenerate it: see its header)"
        )
    for extra in ("kserve", "onnxruntime", "catboost"):
        assert extra in pins


def test_skaffold_builds_the_images_and_deploys_the_chart() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["apiVersion"] == "skaffold/v4beta13"
    assert config["kind"] == "Config"
    artifacts = config["build"]["artifacts"]
    built = set()
    for artifact in artifacts:
        dockerfile = REPO / artifact["context"] / artifact["docker"]["dockerfile"]
        assert dockerfile in DOCKERFILES
        if "target" in artifact["docker"]:
            targets = {i.value.split()[-1] for i in parse(dockerfile) if i.name == "FROM"}
            assert artifact["docker"]["target"] in targets
        built.add(artifact["image"])
    assert len(built) == len(DOCKERFILES)
    (release,) = config["manifests"]["helm"]["releases"]
    chart = REPO / release["chartPath"]
    assert (chart / "Chart.yaml").exists()
    for values in release["valuesFiles"]:
        assert (REPO / values).exists()
    values = yaml.safe_load((chart / "values.yaml").read_text())
    # Every image skaffold builds is set in the chart, at a key the chart has.
    used = set()
    for key, template in release["setValueTemplates"].items():
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"values.yaml has no {key}"
            node = node[part]
        used.update(re.findall(r"IMAGE_(?:REPO|TAG)_(\w+)", template))
    assert used == {re.sub(r"[^A-Za-z0-9]", "_", image) for image in built}
    # The gpu profile switches the model server's target to one the Dockerfile has.
    (gpu,) = [p for p in config["profiles"] if p["name"] == "gpu"]
    target_patch = next(p for p in gpu["patches"] if p["path"].endswith("/target"))
    index = int(target_patch["path"].split("/")[3])
    assert artifacts[index]["image"] == "radpipe/model-server"
    for patch in gpu["patches"]:
        if patch["path"].endswith("valuesFiles/-"):
            assert (REPO / patch["value"]).exists()
