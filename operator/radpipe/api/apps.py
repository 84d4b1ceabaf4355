"""Loading AnalysisApp definitions: the YAML files shipped in the package, plus any in
the configured ``apps_dir``. The operator reads the same documents as cluster resources,
so local and cluster runs use one definition of each app.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from radpipe.api.models import AnalysisApp


class AppError(Exception):
    """An app is unknown or its definition is invalid."""


def _parse(text: str, origin: str) -> AnalysisApp:
    try:
        document: Any = yaml.safe_load(text)
        return AnalysisApp.model_validate(document)
    except yaml.YAMLError as err:
        raise AppError(f"app definition {origin} is not valid YAML: {err}") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise AppError(f"app definition {origin} is invalid: {problems}") from err


def bundled_apps() -> dict[str, AnalysisApp]:
    """The apps shipped inside the radpipe package (parsed once per process)."""
    return dict(_parse_bundled())


@cache
def _parse_bundled() -> dict[str, AnalysisApp]:
    apps: dict[str, AnalysisApp] = {}
    folder = resources.files("radpipe.api") / "apps"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            app = _parse(entry.read_text(), f"radpipe/api/apps/{entry.name}")
            apps[app.metadata.name] = app
    return apps


def load_apps(extra_dir: Path | None = None) -> dict[str, AnalysisApp]:
    """Bundled apps, overridden or extended by the YAML files in ``extra_dir``."""
    apps = bundled_apps()
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise AppError(f"apps_dir {extra_dir} is not a directory; fix apps_dir in the config")
        for path in sorted(extra_dir.glob("*.y*ml")):
            app = _parse(path.read_text(), str(path))
            apps[app.metadata.name] = app
    return apps


def get_app(name: str, extra_dir: Path | None = None) -> AnalysisApp:
    """One app by name; the error lists the apps that exist."""
    apps = load_apps(extra_dir)
    if name not in apps:
        raise AppError(f"unknown app {name!r}; available apps: {', '.join(sorted(apps))}")
    return apps[name]
