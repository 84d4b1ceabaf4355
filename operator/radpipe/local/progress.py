"""Progress bars for local runs: one bar per stage, drawn with rich."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from radpipe.pipeline.contract import StageResult


class RichReporter:
    """A :class:`~radpipe.local.runner.RunReporter` that draws one bar per stage."""

    def __init__(self, console: Console, stages: list[str], *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.fields[stage]:<12}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {
            name: self._progress.add_task(name, total=1.0, stage=name, note="", start=False)
            for name in stages
        }

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def stage_started(self, stage: str, attempt: int) -> None:
        task = self._tasks[stage]
        self._progress.start_task(task)
        note = f"attempt {attempt}" if attempt > 1 else ""
        self._progress.update(task, completed=0.0, note=note)

    def stage_progress(self, stage: str, fraction: float, message: str) -> None:
        self._progress.update(self._tasks[stage], completed=fraction, note=message)

    def stage_finished(self, stage: str, result: StageResult, reused: bool) -> None:
        task = self._tasks[stage]
        if result.complete:
            note = "reused" if reused else "done"
            self._progress.update(task, completed=1.0, note=note)
        else:
            self._progress.update(task, note=f"[red]failed[/]: {result.message or ''}"[:120])
        self._progress.stop_task(task)

    def waiting(self, stage: str, seconds: float) -> None:
        self._progress.update(self._tasks[stage], note=f"retry in {seconds:.0f}s")
