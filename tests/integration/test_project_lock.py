"""One writer at a time: a second run waits for the project lock or stops naming its holder; the lock of a
killed process is taken over; a process may take the lock it holds again."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, fast_params
from trackflow.cli import app
from trackflow.lock import ProjectLockedError, project_lock, read_holder
from trackflow.paths import ProjectPaths

# Run in a child process: hold the lock for argv[2] seconds (0: until killed).
HOLDER = textwrap.dedent(
    """
    import sys, time
    from trackflow.lock import project_lock
    from trackflow.paths import ProjectPaths

    with project_lock(ProjectPaths.at(sys.argv[1]), "a scheduled training-flow run", wait_s=0):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]) or 600)
    """
)


def _hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


@pytest.fixture
def held(project: Path) -> Iterator[subprocess.Popen[str]]:
    child = _hold(project, 0)
    yield child
    child.kill()
    child.wait()


def test_a_second_run_stops_naming_the_holder(project: Path, held: subprocess.Popen[str]) -> None:
    paths = ProjectPaths.at(project)
    started = time.monotonic()
    expected = rf"scheduled training-flow run \(process {held.pid} on "
    with pytest.raises(ProjectLockedError, match=expected), project_lock(paths, "a manual run", wait_s=1.0):
        pytest.fail("the lock was taken while another process held it")
    assert time.monotonic() - started >= 1.0  # it waited as long as asked, no longer than needed


def test_a_single_stage_and_a_flow_refuse_while_another_run_writes(
    project: Path, held: subprocess.Popen[str], prefect_harness: None
) -> None:
    from flows.batch_scoring import batch_scoring

    fast_params(project, runs__lock_wait_s=0)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    stage = CliRunner().invoke(app, ["ingest", "--root", str(project)])
    assert stage.exit_code == 1
    assert f"in use by a scheduled training-flow run (process {held.pid}" in stage.output
    with pytest.raises(ProjectLockedError, match=f"process {held.pid}"):
        batch_scoring(root=str(project))
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before  # nothing written


def test_a_waiting_run_goes_on_when_the_holder_finishes(project: Path) -> None:
    paths = ProjectPaths.at(project)
    child = _hold(project, 2.0)
    started = time.monotonic()
    with project_lock(paths, "a drift-triggered retrain", wait_s=120):
        waited = time.monotonic() - started
        assert read_holder(paths)["purpose"] == "a drift-triggered retrain"
    assert child.wait(timeout=30) == 0
    assert 0.5 < waited < 60
    assert read_holder(paths) is None  # released: the file names no holder


def test_the_lock_of_a_killed_process_is_taken_over(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = ProjectPaths.at(project)
    child = _hold(project, 0)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert read_holder(paths)["pid"] == child.pid  # the dead process's record is still there
    with caplog.at_level(logging.WARNING, logger="trackflow"), project_lock(paths, "the next run", wait_s=0):
        assert read_holder(paths)["purpose"] == "the next run"
    taken_over = f"took over the project lock left by a scheduled training-flow run (process {child.pid}"
    assert taken_over in caplog.text


def test_a_process_may_take_the_lock_it_holds_again(project: Path) -> None:
    paths = ProjectPaths.at(project)
    with project_lock(paths, "drift monitoring", wait_s=0):
        with project_lock(paths, "its in-process retrain", wait_s=0):
            assert read_holder(paths)["purpose"] == "drift monitoring"
        assert read_holder(paths)["purpose"] == "drift monitoring"  # still held by the outer block
    assert read_holder(paths) is None
