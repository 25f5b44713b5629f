"""Child processes that cannot outlive `relay dev`.

Each child runs in a process group of its own, so a terminal's Ctrl-C reaches
`relay dev` alone and it stops its children in order (the API and the worker
before the Redis they flush to), and `killpg` reaches whatever a child started.
A parent killed with SIGKILL runs no cleanup at all, so on Linux each child
also asks the kernel for a SIGTERM the moment its parent dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _death_signal_setter() -> Callable[[], None]:
    """What the forked child runs before exec; libc is loaded here, in the parent."""
    parent = os.getpid()
    if sys.platform != "linux":
        return os.setpgrp
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def in_child() -> None:
        os.setpgrp()
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: nothing would signal then.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(args)` for a child that ends with its parent."""
    # preexec_fn is unsafe only with threads about; relay dev forks before it starts any.
    return subprocess.Popen(list(args), preexec_fn=_death_signal_setter(), **popen)


def stop_all(children: Sequence[subprocess.Popen[bytes]], *, grace: float) -> None:
    """SIGTERM to every child's group at once, SIGKILL to those still there after `grace` s."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    # Once reaped, the child's pid (and so its group id) may belong to someone else.
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)
