"""``genzoo train --nproc N``: validate once, in one process, then start N copies of the
command under torchrun (``--standalone --nproc_per_node N``).

Everything a rank would refuse is refused here first, by the same checks the ranks run
(the plan, the run folder's, the batch split), so a bad command prints one line instead
of one per rank inside torchrun's report.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from genzoo.rundir import RunDir
from genzoo.distributed import check_split
from genzoo.errors import GenzooError
from genzoo.planning import Plan, finished_before_start


def check_launch(planned: Plan, nproc: int, *, resume: Path | None, out: Path | None,
                 overwrite: bool) -> None:
    """Refuse a data-parallel run that its ranks would refuse."""
    from genzoo.backends import KERAS_MULTIPROCESS, keras_backend_name

    if planned.spec.backend == "keras" and keras_backend_name() != "torch":
        raise GenzooError(KERAS_MULTIPROCESS)
    if resume is not None:
        done = finished_before_start(RunDir(resume), planned)
        if done is not None:
            raise done
    check_split(planned.train_config.batch_size, nproc)
    if resume is None and out is not None:
        RunDir(out).check_target(overwrite=overwrite)


def launch(nproc: int, out: Path | None, argv: list[str] | None = None) -> None:
    """Re-run this command (``argv``, default ``sys.argv``) under torchrun, with every
    rank writing the one run directory ``out``."""
    args, skip = [], False
    for arg in (sys.argv if argv is None else argv)[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if out is not None and "--out" not in args:  # one run directory for every rank
        args += ["--out", str(out)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "genzoo", *args]
    proc = subprocess.Popen(command)
    # The launcher outlives its ranks, never the other way round. A terminal's Ctrl-C
    # reaches torchrun and the ranks directly (they stop together and checkpoint), so the
    # launcher only waits; a SIGTERM sent to the launcher alone is passed to torchrun,
    # which passes it to the ranks.
    stopped: list[signal.Signals] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopped.append(signal.Signals(signum))
        if signum == signal.SIGTERM:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped or code in (130, 143, -signal.SIGINT, -signal.SIGTERM):
        # The ranks stopped together and rank 0 said where (interrupted at step N).
        sig = stopped[0] if stopped else (signal.SIGTERM if code in (143, -signal.SIGTERM)
                                          else signal.SIGINT)
        name = "Ctrl-C" if sig == signal.SIGINT else sig.name
        print(f"genzoo: distributed training stopped ({name}); continue it with --resume "
              "and the same --nproc", file=sys.stderr)
        raise SystemExit(128 + sig)
    if code != 0:
        raise GenzooError(f"distributed training failed (torchrun exited with {code}); "
                          "the failing rank's error is above")
