"""`dvc repro` reproduces the chain in a copy of the repository, a second run does nothing, a parameter change
reruns only what depends on it, and a bad input makes `dvc repro` fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, fast_params

# Two tasks and one quick family keep this test short; the flow test covers all three tasks.
TASKS = ("popularity", "hit")
DATA_STAGES = ["ingest", "validate", "featurize", "split"]
MODEL_STAGES = [f"{step}@{task}" for step in ("tune", "train", "evaluate", "register") for task in TASKS]


def _tracked_files() -> list[str]:
    listing = ["git", "ls-files", "-co", "--exclude-standard"]
    out = subprocess.run(listing, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [line for line in out.stdout.splitlines() if line]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _ran(output: str) -> set[str]:
    return {s for s in DATA_STAGES + MODEL_STAGES if f"Running stage '{s}'" in output}


def test_dvc_repro_then_nothing_to_do(tmp_path: Path, sample_csv: Path) -> None:
    copy = tmp_path / "repo"
    for name in _tracked_files():
        source = REPO / name
        if source.is_file() and not name.startswith(("metrics/", "data/")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    fast_params(copy, train__tasks=list(TASKS), train__families=["random_forest"])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TRACKS_CSV": str(sample_csv)}
    env.pop("MLFLOW_TRACKING_URI", None)
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], commit):
        assert _run(cmd, copy, env).returncode == 0
    dvc = [str(bin_dir / "dvc")]

    fetched = _run([str(bin_dir / "trackflow"), "fetch-data"], copy, env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    first = _run([*dvc, "repro"], copy, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _ran(first.stdout) == set(DATA_STAGES + MODEL_STAGES)
    for task in TASKS:
        assert (copy / "metrics" / f"{task}.json").is_file()
        assert (copy / "data" / "registry" / f"{task}.json").is_file()
    assert (copy / "dvc.lock").is_file()

    second = _run([*dvc, "repro"], copy, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _ran(second.stdout) == set()
    assert "up to date" in second.stdout.lower()

    # A parameter of one stage reruns that stage, and downstream only what its changed outputs feed:
    # the operating precision of the hit model changes hit's metrics, not popularity's or genre's.
    params = (copy / "params.yaml").read_text()
    assert "hit_min_precision: 0.5" in params
    (copy / "params.yaml").write_text(params.replace("hit_min_precision: 0.5", "hit_min_precision: 0.6"))
    third = _run([*dvc, "repro"], copy, env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert _ran(third.stdout) == {"evaluate@popularity", "evaluate@hit", "register@hit"}

    # Bad data: dvc repro exits non-zero at validate and names the problem.
    raw = copy / "data" / "raw" / "dataset.csv"
    frame = pd.read_csv(raw, dtype=str, keep_default_na=False).rename(columns={"Unnamed: 0": ""})
    frame.drop(columns=["energy"]).to_csv(raw, index=False)
    fourth = _run([*dvc, "repro"], copy, env)
    assert fourth.returncode != 0
    assert "missing column(s): energy" in fourth.stdout + fourth.stderr
