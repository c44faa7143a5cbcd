"""Stopping a run on request: Ctrl-C and SIGTERM become requests that the training loop
answers after a step (checkpoint, then exit with 130 or 143), and a second one stops at
once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from genzoo.distributed import any_rank, world
from genzoo.errors import Terminated
from genzoo.progress import Reporter


class StopRequests:
    """Whether, and by which signal, the user asked a run to stop."""

    def __init__(self) -> None:
        self.requested = False
        self.signal = int(signal.SIGINT)  # the signal that asked to stop

    def should_stop(self, done: int, log_every: int) -> bool:
        """The request, after step ``done``. Under torchrun every rank gets its own
        signal, at its own step: the ranks agree, at the steps where they log anyway (no
        extra sync per step), and stop together."""
        if not world().enabled:
            return self.requested
        if done % log_every:
            return False
        return any_rank(self.requested)

    @contextmanager
    def while_training(self, reporter: Reporter) -> Iterator[None]:
        """First Ctrl-C or SIGTERM: finish the step, checkpoint, stop. Second: stop at once.

        SIGTERM is what ``timeout``, ``docker stop``, systemd and batch schedulers send
        before they kill; the run stops as for Ctrl-C and the CLI exits with status 143.
        It is taken only from its default action: a program that calls ``genzoo.train``
        and handles or ignores SIGTERM itself keeps its handler.

        Under torchrun a rank hears one Ctrl-C twice (from the terminal, then passed on by
        torchrun, which also sends SIGTERM when it shuts the job down): there, repeats
        are ignored and the ranks stop together at the next logged step (torchrun kills
        ranks that take longer than 30 s).
        """
        distributed = world().enabled

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                if distributed:
                    return
                raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
            self.requested, self.signal = True, signum
            again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            reporter.message(
                "stopping at the next logged step, with every rank" if distributed else
                f"stopping after this step ({again} again to quit at once)")

        with handling(handler, signal.SIGINT, signal.SIGTERM, sigterm=distributed):
            yield

    @staticmethod
    @contextmanager
    def while_finishing() -> Iterator[None]:
        """While the run finishes (test pass, weights, samples), SIGTERM stops it at once,
        as Ctrl-C does, and the run stays resumable."""
        def handler(signum: int, frame: Any) -> None:
            raise Terminated

        with handling(handler, signal.SIGTERM):
            yield


@contextmanager
def handling(handler: Any, *signals: int, sigterm: bool = False) -> Iterator[None]:
    """``handler`` for ``signals`` while the block runs; SIGTERM only where it has its
    default action (or ``sigterm``), and nothing outside the main thread."""
    taken = [sig for sig in signals if sig != signal.SIGTERM or sigterm
             or signal.getsignal(sig) is signal.SIG_DFL]
    try:
        previous = {sig: signal.signal(sig, handler) for sig in taken}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
