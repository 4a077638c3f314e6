"""Cleaning up after interruption: a process killed inside an Optuna trial leaves an MLflow run and a trial
RUNNING; the next run marks the run KILLED (saying when and by which run) and the trial FAIL, and the study
resumes cleanly. Runs of live processes and of other hosts are never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from mlflow import MlflowClient

from components import families
from components.tuning import ABANDONED_ATTR, OWNER_ATTR
from tests.conftest import REPO, make_project, prepared
from trackflow.paths import ProjectPaths
from trackflow.processes import PID_TAG, ProcessIdentity
from trackflow.stages.common import params_for
from trackflow.stages.tune import tune_family
from trackflow.tracking import KILLED_AT_TAG, KILLED_BY_TAG, Tracker

# Run in a child process: a family whose first fit never returns, so the kill lands inside trial 0.
STUCK_TUNING = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from components import families

    class Stuck(families.RandomForestFamily):
        name = "stuck"

        def fit(self, *args, **kwargs):
            Path(sys.argv[2]).write_text("inside a trial")
            time.sleep(600)

    families.FAMILIES["stuck"] = Stuck()
    from trackflow.paths import ProjectPaths
    from trackflow.stages.common import params_for
    from trackflow.stages.tune import tune_family

    paths = ProjectPaths.at(sys.argv[1])
    tune_family(paths, params_for(paths), "popularity", "stuck")
    """
)


class QuickStuck(families.RandomForestFamily):
    """The same family name, fitting normally: what the rerun after the kill tunes."""

    name = "stuck"


def _running(client: MlflowClient, experiment_id: str) -> list[Any]:
    return client.search_runs([experiment_id], "attributes.status = 'RUNNING'")


@pytest.fixture
def stuck_project(tmp_path: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    monkeypatch.setenv("TRACKS_CSV", str(sample_csv))
    root = make_project(tmp_path, train__tasks=["popularity"])
    spaces_yaml = root / "configs" / "families.yaml"
    spaces = yaml.safe_load(spaces_yaml.read_text())
    spaces["families"]["stuck"] = spaces["families"]["random_forest"]
    spaces_yaml.write_text(yaml.safe_dump(spaces))
    return prepared(root)


def test_a_kill_inside_a_trial_leaves_nothing_running_after_the_next_run(
    stuck_project: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = stuck_project
    flag = tmp_path / "inside-a-trial"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK_TUNING, str(paths.root), str(flag)], cwd=REPO, env=env
    )
    try:
        deadline = time.monotonic() + 180
        while not flag.exists():
            assert child.poll() is None, "the tuning child ended before its first trial"
            assert time.monotonic() < deadline, "the tuning child never reached a trial"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    storage = f"sqlite:///{paths.optuna / 'popularity-stuck.db'}"
    (study_name,) = optuna.get_all_study_names(storage)
    (left,) = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    assert left.state == optuna.trial.TrialState.RUNNING
    assert left.user_attrs[OWNER_ATTR][PID_TAG] == str(child.pid)
    tracker = Tracker.for_project(paths, params_for(paths))
    (killed_run,) = _running(tracker.client, tracker.experiment_id)
    assert killed_run.data.tags[PID_TAG] == str(child.pid)

    monkeypatch.setitem(families.FAMILIES, "stuck", QuickStuck())
    summary = tune_family(paths, params_for(paths), "popularity", "stuck")

    assert _running(tracker.client, tracker.experiment_id) == []
    ended = tracker.client.get_run(killed_run.info.run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.tags[KILLED_BY_TAG] == summary["mlflow_run_id"]
    assert ended.data.tags[KILLED_AT_TAG].startswith("20")
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    abandoned = trials[0]
    assert abandoned.state == optuna.trial.TrialState.FAIL
    assert abandoned.user_attrs[ABANDONED_ATTR]["marked_by"][PID_TAG] == str(os.getpid())
    # The abandoned trial is reported, but the study still ran its full n_trials after it.
    n_trials = params_for(paths).train.tuning.n_trials
    assert summary["n_failed"] == 1 and summary["abandoned_trials"] == [0]
    assert summary["n_complete"] + summary["n_pruned"] == n_trials
    assert np.isfinite(summary["cv_score"])


def test_only_runs_of_dead_processes_of_this_host_are_marked_killed(project: Path) -> None:
    paths = ProjectPaths.at(project)
    tracker = Tracker.for_project(paths, params_for(paths))
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(exited.stdout)
    me = ProcessIdentity.current()
    recorded = {
        "dead here": ProcessIdentity(me.host, dead_pid, me.started),
        "pid reused": ProcessIdentity(me.host, me.pid, me.started - 3600),  # same pid, another start
        "alive here": me,
        "elsewhere": ProcessIdentity(f"not-{socket.gethostname()}", dead_pid, me.started),
    }
    ids = {
        name: tracker.client.create_run(tracker.experiment_id, run_name=name, tags=who.tags()).info.run_id
        for name, who in recorded.items()
    }
    untagged = tracker.client.create_run(tracker.experiment_id, run_name="untagged").info.run_id

    with tracker.run("the next run") as run:
        pass

    status = {name: tracker.client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "dead here": "KILLED",
        "pid reused": "KILLED",
        "alive here": "RUNNING",
        "elsewhere": "RUNNING",
    }
    assert tracker.client.get_run(untagged).info.status == "RUNNING"
    assert tracker.client.get_run(ids["dead here"]).data.tags[KILLED_BY_TAG] == run.id
    assert tracker.client.get_run(run.id).data.tags[PID_TAG] == str(os.getpid())
