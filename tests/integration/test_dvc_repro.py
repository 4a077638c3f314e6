"""The two runners of one definition, end to end in copies of the repository (git and DVC included):

- the Prefect flows record what they ran in dvc.lock, so `dvc status` is clean and `dvc repro` does nothing;
- `dvc repro` from scratch in a second copy writes the very same metrics/*.json as the flows did (two runs
  from scratch on the same data, params and code; the flows tune two families side by side);
- a parameter change reruns only what depends on it; a run with an override leaves dvc.lock alone; bad data
  makes `dvc repro` fail at the gate and name the problem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, fast_params

# Two tasks and two quick families keep this test short; the flow test covers all three tasks.
TASKS = ("popularity", "hit")
FAMILIES = ["random_forest", "lightgbm"]
DATA_STAGES = ["ingest", "validate", "featurize", "split"]
MODEL_STAGES = [f"{step}@{task}" for step in ("tune", "train", "evaluate", "register") for task in TASKS]
DISCOVERY_STAGES = ["discover", "register-discovery"]
ALL_STAGES = DATA_STAGES + MODEL_STAGES + DISCOVERY_STAGES
METRICS = [*(f"{task}.json" for task in TASKS), "discovery.json"]


def _tracked_files() -> list[str]:
    listing = ["git", "ls-files", "-co", "--exclude-standard"]
    out = subprocess.run(listing, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [line for line in out.stdout.splitlines() if line]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _ran(output: str) -> set[str]:
    return {s for s in ALL_STAGES if f"Running stage '{s}'" in output}


def _clone(target: Path, env: dict[str, str]) -> Path:
    """The repository's files (no produced state) with fast params, committed to a git repository."""
    for name in _tracked_files():
        source = REPO / name
        produced = name.startswith(("metrics/", "data/")) and name != "data/labels/.gitkeep"
        if source.is_file() and not produced and name != "dvc.lock":
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    fast_params(target, train__tasks=list(TASKS), train__families=FAMILIES)
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], commit):
        assert _run(cmd, target, env).returncode == 0
    return target


@pytest.fixture(scope="module")
def dvc_env(small_sample_csv: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TRACKS_CSV": str(small_sample_csv)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


DVC = [str(Path(sys.executable).parent / "dvc")]


@pytest.fixture(scope="module")
def flow_copy(
    tmp_path_factory: pytest.TempPathFactory,
    dvc_env: dict[str, str],
    small_sample_csv: Path,
    prefect_harness: None,
) -> Path:
    """A copy of the repository trained by the Prefect flows (training, then discovery)."""
    from flows.discovery import discovery
    from flows.training import training

    root = _clone(tmp_path_factory.mktemp("flows") / "repo", dvc_env)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("TRACKS_CSV", str(small_sample_csv))
        trained = training(root=str(root), fetch=True)
        found = discovery(root=str(root))
    for result in (trained, found):
        assert result["dvc"]["recorded"], result["dvc"]["reason"]
    assert set(trained["dvc"]["stages"]) == set(DATA_STAGES + MODEL_STAGES)
    return root


def test_after_the_flows_dvc_has_nothing_to_do(flow_copy: Path, dvc_env: dict[str, str]) -> None:
    status = _run([*DVC, "status"], flow_copy, dvc_env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "up to date" in status.stdout.lower(), status.stdout
    repro = _run([*DVC, "repro"], flow_copy, dvc_env)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert _ran(repro.stdout) == set(), repro.stdout


def test_a_run_with_an_override_leaves_dvc_lock_alone(
    flow_copy: Path, tmp_path: Path, dvc_env: dict[str, str]
) -> None:
    """What keeps a run out of dvc.lock; the drift retrain itself is checked in test_scoring_drift."""
    from trackflow.paths import ProjectPaths
    from trackflow.runner import load_run_params, record_in_dvc_lock

    root = tmp_path / "copy"
    shutil.copytree(flow_copy, root, symlinks=True)
    paths = ProjectPaths.at(root)
    assert load_run_params(paths, profile="default").overrides == ()  # params.yaml's own profile
    overrides = load_run_params(paths, profile="full").overrides
    assert overrides == ("tuning profile 'full' instead of params.yaml's 'default'",)
    lock = (root / "dvc.lock").read_bytes()
    (root / "metrics" / "hit.json").write_text("{}")  # as if the overridden run had written it
    outcome = record_in_dvc_lock(paths, ["evaluate@hit"], overrides)
    assert not outcome["recorded"] and "full" in outcome["reason"]
    assert (root / "dvc.lock").read_bytes() == lock
    assert "evaluate@hit" in _run([*DVC, "status"], root, dvc_env).stdout  # and DVC sees the change
    # With no reason against it, the same call records the stage and DVC is clean again.
    assert record_in_dvc_lock(paths, ["evaluate@hit"], [])["recorded"]
    assert "up to date" in _run([*DVC, "status", "evaluate@hit"], root, dvc_env).stdout.lower()


def test_dvc_repro_from_scratch_reproduces_the_flows(
    flow_copy: Path, tmp_path: Path, dvc_env: dict[str, str]
) -> None:
    copy = _clone(tmp_path / "repo", dvc_env)
    fetched = _run([str(Path(sys.executable).parent / "trackflow"), "fetch-data"], copy, dvc_env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    first = _run([*DVC, "repro"], copy, dvc_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _ran(first.stdout) == set(ALL_STAGES)
    for name in METRICS:  # as written, 6 decimals: byte for byte
        assert (copy / "metrics" / name).read_text() == (flow_copy / "metrics" / name).read_text(), name
    for task in TASKS:
        assert (copy / "data" / "registry" / f"{task}.json").is_file()

    second = _run([*DVC, "repro"], copy, dvc_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _ran(second.stdout) == set()
    assert "up to date" in second.stdout.lower()

    # A parameter of one stage reruns that stage, and downstream only what its changed outputs feed:
    # the operating precision of the hit model changes hit's metrics, not popularity's.
    params = (copy / "params.yaml").read_text()
    assert "hit_min_precision: 0.5" in params
    (copy / "params.yaml").write_text(params.replace("hit_min_precision: 0.5", "hit_min_precision: 0.6"))
    third = _run([*DVC, "repro"], copy, dvc_env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert _ran(third.stdout) == {"evaluate@popularity", "evaluate@hit", "register@hit"}

    # Bad data: dvc repro exits non-zero at validate and names the problem.
    raw = copy / "data" / "raw" / "dataset.csv"
    frame = pd.read_csv(raw, dtype=str, keep_default_na=False).rename(columns={"Unnamed: 0": ""})
    frame.drop(columns=["energy"]).to_csv(raw, index=False)
    fourth = _run([*DVC, "repro"], copy, dvc_env)
    assert fourth.returncode != 0
    assert "missing column(s): energy" in fourth.stdout + fourth.stderr
