"""Progress reporting: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, TextIO


def format_metrics(metrics: Mapping[str, float], keys: int = 5) -> str:
    shown = [f"{k} {v:.4g}" for k, v in list(metrics.items())[:keys]]
    return "  ".join(shown)


class Reporter:
    """Silent reporter; the base of the others.

    ``genzoo.train(..., reporter=...)`` and ``genzoo.evaluate(..., reporter=...)`` call
    these methods; subclass it to send progress elsewhere (a notebook widget, a logger).
    """

    def start(self, total: int, initial: int, description: str) -> None:
        """Training of ``total`` steps begins (at step ``initial`` when resumed)."""

    def advance(self, step: int) -> None:
        """Step ``step`` is done."""

    def metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """The metrics logged at ``step`` (every ``log_every`` steps, and evaluations)."""

    def message(self, text: str) -> None:
        """A one-line notice (resuming, stopping, a checkpoint fallback)."""

    @contextmanager
    def task(self, text: str) -> Iterator[None]:
        """A long step with no steps to count (generating 10,000 samples): announced,
        then timed."""
        yield

    def close(self) -> None:
        """Training is over: release the terminal."""


class PlainReporter(Reporter):
    """Periodic log lines, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr

    def start(self, total: int, initial: int, description: str) -> None:
        self.total, self.description = total, description
        self.t0, self.step0 = time.perf_counter(), initial
        self.message(f"{description}: training for {total} steps"
                     + (f" (resuming at step {initial})" if initial else ""))

    def metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.step0) / elapsed if elapsed > 0 else 0.0
        self.message(f"step {step}/{self.total}  {format_metrics(metrics)}  "
                     f"({rate:.1f} steps/s)")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    heartbeat = 15.0  # seconds between "still working" lines of a long task

    @contextmanager
    def task(self, text: str) -> Iterator[None]:
        """Say what starts, then every ``heartbeat`` seconds that it is still going, then
        how long it took: a long silent wait looks like a hang."""
        self.message(f"{text} ...")
        t0, done = time.perf_counter(), threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat):
                self.message(f"{text}: {time.perf_counter() - t0:.0f} s so far")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
        self.message(f"{text}: done in {time.perf_counter() - t0:.1f} s")


class RichReporter(Reporter):
    """A live progress bar with the latest loss."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream) if stream is not None else Console(stderr=True)
        self.progress: Any = None  # a rich Progress, from start() to close()
        self.bar: Any = None  # its task: the training steps

    def start(self, total: int, initial: int, description: str) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.start()
        self.bar = self.progress.add_task(description, total=total, completed=initial,
                                          metrics="")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.bar, completed=step)

    def metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.progress is not None:
            self.progress.update(self.bar, completed=step, metrics=format_metrics(metrics, 3))

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    @contextmanager
    def task(self, text: str) -> Iterator[None]:
        """A spinner while a long step runs (a line while the bar shows), then how long it
        took."""
        t0 = time.perf_counter()
        if self.progress is not None:  # rich shows one live display at a time
            self.message(f"{text} ...")
        with nullcontext() if self.progress is not None else self.console.status(text):
            yield
        self.message(f"{text}: done in {time.perf_counter() - t0:.1f} s")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_reporter(stream: TextIO | None = None) -> Reporter:
    """A bar when ``stream`` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    return RichReporter(stream) if stream.isatty() else PlainReporter(stream)
