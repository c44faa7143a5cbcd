"""Helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run_genzoo(*args: str, env: dict[str, str | None] | None = None, cwd: Path | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a subprocess, as a user would.

    ``env`` entries override the environment; a value of ``None`` removes the variable.
    """
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    exe = Path(sys.executable).with_name("genzoo")
    # Never the checkout: a command that writes into "." must not write into the repository.
    cwd = cwd or Path(tempfile.mkdtemp(prefix="genzoo-cli-"))
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)
