"""A progress bar for long commands, fed by the steps the import pipeline reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

StepCallback = Callable[[str, float], None]


@contextmanager
def progress_reporter(*, enabled: bool) -> Iterator[StepCallback]:
    """Yield ``report(step_name, fraction_done)``; draws a bar on stderr when enabled."""
    if not enabled:
        yield lambda _name, _fraction: None
        return
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("starting", total=1.0)

        def report(name: str, fraction: float) -> None:
            progress.update(task, description=name, completed=fraction)

        yield report
        progress.update(task, description="done", completed=1.0)
