"""Schedules and deployments: `trackflow serve`'s deployments register against a Prefect server with their
cron schedules; prefect.yaml and the CI workflows point at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client

from flows.deployments import build_deployments
from flows.schedules import deployment_exists, load_schedules, retrain_deployment
from tests.bad_inputs import BAD_INPUTS
from tests.conftest import REPO, copy_project, prefect_artifacts
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for

SCHEDULES = REPO / "configs" / "schedules.yaml"


def test_deployments_register_with_their_schedules(prefect_harness: None) -> None:
    specs = load_schedules(SCHEDULES)
    ids = [deployment.apply() for deployment in build_deployments(REPO)]
    try:
        with get_client(sync_client=True) as client:
            for deployment_id in ids:
                registered = client.read_deployment(deployment_id)
                flow_name = client.read_flow(registered.flow_id).name
                spec = specs[flow_name]
                assert registered.name == spec.name
                assert [s.schedule.cron for s in registered.schedules] == [spec.cron]
                assert [s.schedule.timezone for s in registered.schedules] == [spec.timezone]
                assert registered.parameters == {"root": str(REPO)}
        # Drift-triggered retraining finds the training deployment once a server has it.
        assert retrain_deployment(REPO) == "training/weekly"
        assert deployment_exists("training/weekly")
        assert not deployment_exists("training/no-such-deployment")
    finally:
        with get_client(sync_client=True) as client:
            for deployment_id in ids:  # later tests expect no deployment (in-process retraining)
                client.delete_deployment(deployment_id)


def test_a_bad_cron_is_named(tmp_path: Path) -> None:
    raw = yaml.safe_load(SCHEDULES.read_text())
    raw["deployments"]["batch_scoring"]["cron"] = "every day at five"
    bad = tmp_path / "schedules.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="batch_scoring"):
        load_schedules(bad)


def test_prefect_yaml_points_at_real_flows_with_the_served_schedules() -> None:
    import importlib

    from prefect import Flow

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    specs = load_schedules(SCHEDULES)
    seen = set()
    for deployment in config["deployments"]:
        module_path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert isinstance(flow, Flow)
        spec = specs[flow.name]
        assert deployment["name"] == spec.name
        assert [s["cron"] for s in deployment["schedules"]] == [spec.cron]
        seen.add(flow.name)
    assert seen == set(specs)
    pools = {d["work_pool"]["name"] for d in config["deployments"]}
    assert "trackflow-gpu" in pools


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))


@pytest.mark.parametrize("workflow", ["ci.yml", "retrain.yml"])
def test_workflows_are_valid_and_call_make_targets_that_exist(workflow: str) -> None:
    path = REPO / ".github" / "workflows" / workflow
    config = yaml.safe_load(path.read_text())
    triggers = config[True] if True in config else config["on"]  # YAML 1.1 reads a bare `on` as True
    steps = [step for job in config["jobs"].values() for step in job["steps"]]
    commands = "\n".join(step.get("run", "") for step in steps)
    called = set(re.findall(r"\bmake((?: [a-z][\w-]*)+)", commands))
    targets = {t for group in called for t in group.split()}
    assert targets, "the workflow should call make targets, as a person would"
    assert targets <= _make_targets(), targets - _make_targets()
    if workflow == "retrain.yml":
        assert {"schedule", "workflow_dispatch", "push"} <= set(triggers)
        assert "params.yaml" in triggers["push"]["paths"]
        assert "repro" in targets and "dvc metrics diff" in commands
    else:
        assert "test" in targets


def test_a_deployment_run_goes_through_a_process_worker(trained_project: Path, tmp_path: Path) -> None:
    """A batch_scoring deployment on a process work pool, as a schedule runs it (every pending batch): a real
    worker executes the flow in a subprocess; the good batch is scored, the truncated file beside it is
    rejected and kept, and the run ends Completed with the rejection in its artifact."""
    project = copy_project(trained_project, tmp_path)  # its batch and predictions stay in the copy
    import os
    import subprocess
    import sys

    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.settings import get_current_settings

    from flows.batch_scoring import batch_scoring
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(project)
    batch = Path(
        simulate_stage.simulate(paths, params_for(paths), "none", rows=300, name="via-worker")["path"]
    )
    truncated = BAD_INPUTS["truncated_gz"].write(
        pd.read_parquet(batch).astype("string"), batch.parent / "cut-off.csv.gz"
    )
    pool = "test-process-pool"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment_id = batch_scoring.to_deployment(
        name="via-worker",
        parameters={"root": str(project)},
        job_variables={"working_dir": str(REPO)},  # the worker runs the flow from this checkout
    ).apply(work_pool_name=pool)
    try:
        flow_run = run_deployment("batch_scoring/via-worker", timeout=0)
        env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
        env.pop("MLFLOW_TRACKING_URI", None)  # the project's params.yaml names its store
        worker = subprocess.run(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--run-once"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
        assert state.is_completed(), (state, worker.stdout[-3000:], worker.stderr[-3000:])
        assert len(pd.read_parquet(paths.predictions("via-worker"))) == 300
        assert not truncated.exists() and (paths.rejected("cut-off") / "rejection.json").is_file()
        (artifact,) = prefect_artifacts("batch-scoring", flow_run.id)
        assert "1 batch(es) scored, 1 rejected" in artifact.data
        assert "| cut-off | rejected |" in artifact.data and "truncated or corrupt" in artifact.data
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
