"""One writer at a time: a run that writes the project's stage outputs (training, discovery, scoring, drift
monitoring, a single DVC stage) holds the project lock, so that a scheduled run, a drift-triggered retrain
and a manual run never write the same files at once. The second waits up to `runs.lock_wait_s`, then stops
with a message naming the holder.

The lock is an exclusive flock on `.trackflow/project.lock`: the kernel releases it when its process dies,
however it dies, so a stale lock of a dead process is simply taken over (and the takeover is logged). The
file also names the holder (host, pid, start time, what it runs, since when) for the message of whoever
waits. A process that holds the lock may take it again (a drift check that retrains in-process).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trackflow.paths import ProjectPaths
from trackflow.processes import ProcessIdentity

log = logging.getLogger("trackflow")
LOCK_FILE = Path(".trackflow") / "project.lock"
_ANNOUNCE_EVERY_S = 60.0
Logger = logging.Logger | logging.LoggerAdapter[Any]


class ProjectLockedError(RuntimeError):
    """Another live run held the project lock for longer than this run would wait."""


@dataclass
class _Held:
    fd: int
    depth: int


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


def lock_path(paths: ProjectPaths) -> Path:
    return paths.root / LOCK_FILE


def read_holder(paths: ProjectPaths) -> dict[str, Any] | None:
    """What the lock file says of its last holder; None when empty or unreadable (being rewritten)."""
    try:
        text = lock_path(paths).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    return (
        f"{holder.get('purpose', '?')} (process {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('since', '?')})"
    )


@contextmanager
def project_lock(paths: ProjectPaths, purpose: str, wait_s: float, logger: Logger = log) -> Iterator[None]:
    """Hold the project lock for the block; wait up to `wait_s` seconds for another holder."""
    key = paths.root.resolve()
    with _held_guard:
        held = _held.get(key)
        if held is not None:  # this process holds it already
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _held_guard:
                held.depth -= 1
        return
    fd = _acquire(paths, purpose, wait_s, logger)
    with _held_guard:
        _held[key] = _Held(fd, 1)
    try:
        yield
    finally:
        with _held_guard:
            held = _held[key]
            held.depth -= 1
            release = held.depth == 0
            if release:
                del _held[key]
        if release:
            os.ftruncate(fd, 0)  # before unlocking: a waiter never reads a released holder as current
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _acquire(paths: ProjectPaths, purpose: str, wait_s: float, logger: Logger) -> int:
    path = lock_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    announced = -_ANNOUNCE_EVERY_S
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                holder = describe_holder(read_holder(paths))
                if waited >= wait_s:
                    raise ProjectLockedError(
                        f"{paths.root} is in use by {holder}; waited {waited:.0f} s (runs.lock_wait_s is "
                        f"{wait_s:g}). Run again when it has finished."
                    ) from None
                if waited - announced >= _ANNOUNCE_EVERY_S:
                    logger.warning("waiting up to %g s for the project lock, held by %s", wait_s, holder)
                    announced = waited
                time.sleep(min(0.5, max(0.0, wait_s - waited)))
        left_behind = read_holder(paths)
        if left_behind:  # released normally, the file would be empty: its holder died holding it
            logger.warning("took over the project lock left by %s, which ended", describe_holder(left_behind))
        me = ProcessIdentity.current()
        record = {
            "purpose": purpose,
            "host": me.host,
            "pid": me.pid,
            "process_start": round(me.started, 2),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise
