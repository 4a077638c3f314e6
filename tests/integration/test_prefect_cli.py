"""The Prefect CLI commands the README and a user rely on, run as a user runs them (the `prefect` command in a
subprocess) against the test run's Prefect server, with the project's deployments registered. With prefect
3.8.8 and fastapi 0.153.0, `deployment ls` and `flow-run ls` ended in 422 (the server rejected the client's
`limit: null`); these fail if a pin brings that back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import get_current_settings

from flows.deployments import build_deployments
from flows.schedules import load_schedules
from tests.conftest import REPO, make_project

POOL = "trackflow-cli-test"


def prefect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "COLUMNS": "250"}
    command = [sys.executable, "-m", "prefect", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def deployed(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The three scheduled deployments registered with the server, and a process work pool."""
    root = make_project(tmp_path_factory.mktemp("cli"))
    ids = [deployment.apply() for deployment in build_deployments(root)]
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    yield [spec.full_name for spec in load_schedules(root / "configs" / "schedules.yaml").values()]
    with get_client(sync_client=True) as client:
        for deployment_id in ids:
            client.delete_deployment(deployment_id)
        client.delete_work_pool(POOL)


def test_deployment_ls_and_inspect(deployed: list[str]) -> None:
    listed = prefect("deployment", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in deployed:
        assert name in listed.stdout, listed.stdout
    inspected = prefect("deployment", "inspect", "batch_scoring/daily")
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "batch_scoring" in inspected.stdout and "0 5 * * *" in inspected.stdout


def test_deployment_run_then_flow_run_ls(deployed: list[str]) -> None:
    started = prefect("deployment", "run", "drift_monitoring/daily")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "Created flow run" in started.stdout
    runs = prefect("flow-run", "ls")
    assert runs.returncode == 0, runs.stdout + runs.stderr
    assert "drift_monitoring" in runs.stdout and "SCHEDULED" in runs.stdout.upper()


def test_work_pool_ls(deployed: list[str]) -> None:
    pools = prefect("work-pool", "ls")
    assert pools.returncode == 0, pools.stdout + pools.stderr
    assert POOL in pools.stdout
