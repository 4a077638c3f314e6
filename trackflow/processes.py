"""Which process did it, and does that process still exist: the identity that MLflow runs, Optuna trials and
the project lock record, so that what a killed process left behind can be told from what a live one holds.

A process is named by host, pid and start time: a pid alone is reused once its process is gone. Liveness is
known only on the same host; a record from another host is never taken for dead.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

HOST_TAG = "trackflow.host"
PID_TAG = "trackflow.pid"
START_TAG = "trackflow.process_start"
# Start times come from the kernel in clock ticks; two reads of one process agree far closer than this.
_START_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    started: float  # seconds since the epoch, as the kernel reports the process's start

    @classmethod
    def current(cls) -> ProcessIdentity:
        return _current(os.getpid())

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ProcessIdentity | None:
        """The identity in a run's tags (or a trial's attributes); None when they do not hold one."""
        try:
            return cls(str(tags[HOST_TAG]), int(tags[PID_TAG]), float(tags[START_TAG]))
        except (KeyError, TypeError, ValueError):
            return None

    def tags(self) -> dict[str, str]:
        return {HOST_TAG: self.host, PID_TAG: str(self.pid), START_TAG: f"{self.started:.2f}"}

    def gone(self) -> bool:
        """True when this is a process of this host that no longer exists (its pid is free or now belongs to
        a process that started at another time); False when it lives or lives elsewhere."""
        if self.host != socket.gethostname():
            return False
        try:
            started = psutil.Process(self.pid).create_time()
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:  # exists, but we may not look at it: not ours to call dead
            return False
        return abs(started - self.started) > _START_TOLERANCE_S

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def recorded_process_gone(tags: Mapping[str, str]) -> bool:
    """Whether the process recorded in `tags` is known to be gone (False when no identity is recorded)."""
    owner = ProcessIdentity.from_tags(tags)
    return owner is not None and owner.gone()


@functools.cache
def _current(pid: int) -> ProcessIdentity:
    # Keyed by pid: a forked child computes its own.
    return ProcessIdentity(socket.gethostname(), pid, psutil.Process(pid).create_time())
