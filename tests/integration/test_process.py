"""Process settings live at the entry points (trackflow/process.py): the `trackflow` command and the flows
package set OMP_WAIT_POLICY=PASSIVE before OpenMP loads, and child processes inherit it; importing the
components sets nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent
# libgomp prints its settings when it loads: with passive waiting its spin count is 0 (300000 by default).
PASSIVE = "GOMP_SPINCOUNT = '0'"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    return env


def test_the_trackflow_command_sets_passive_waiting_before_openmp_loads() -> None:
    done = subprocess.run(
        [str(BIN / "trackflow"), "dvc-yaml", "--check"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GOMP_SPINCOUNT" in done.stderr  # OpenMP did load in this command
    assert "GOMP_SPINCOUNT = '300000'" not in done.stderr and PASSIVE in done.stderr
    # The same libraries imported without an entry point: OpenMP spins (what the setting prevents).
    plain = subprocess.run(
        [sys.executable, "-c", "import components, lightgbm"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert "GOMP_SPINCOUNT = '300000'" in plain.stderr


def test_child_processes_of_the_flows_see_it() -> None:
    child = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    parent = f"import flows, subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    done = subprocess.run(
        [sys.executable, "-c", parent], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "PASSIVE"
