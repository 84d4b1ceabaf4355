"""The fault table: every fault test records (fault, outcome, time to recover) here and
the table is printed at the end of the pytest run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class FaultRow:
    """One fault injected and what became of the job."""

    fault: str
    outcome: str
    recover_s: float | None
    detail: str = ""


FAULT_TABLE: list[FaultRow] = []


@pytest.fixture
def fault_table() -> list[FaultRow]:
    """Where a fault test records its row."""
    return FAULT_TABLE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault table (fault, outcome, time from fault to the job's end)."""
    if not FAULT_TABLE:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault injection")
    write(f"{'fault':<46} {'outcome':<11} {'recover s':>9}  detail")
    for row in FAULT_TABLE:
        seconds = f"{row.recover_s:.1f}" if row.recover_s is not None else "-"
        write(f"{row.fault:<46} {row.outcome:<11} {seconds:>9}  {row.detail}")
