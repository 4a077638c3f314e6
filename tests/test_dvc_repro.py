"""`dvc repro` reproduces the chain in a copy of the repository, and a second run does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, fast_params


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [line for line in out.stdout.splitlines() if line]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_dvc_repro_then_nothing_to_do(tmp_path: Path, sample_csv: Path) -> None:
    copy = tmp_path / "repo"
    for name in _tracked_files():
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    fast_params(copy)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TRACKS_CSV": str(sample_csv)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        assert _run(cmd, copy, env).returncode == 0
    dvc = [str(Path(bin_dir) / "dvc")]

    fetched = _run([str(Path(bin_dir) / "trackflow"), "fetch-data"], copy, env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    first = _run([*dvc, "repro"], copy, env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("ingest", "validate", "featurize", "split", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in first.stdout
    assert (copy / "metrics" / "popularity.json").is_file()
    assert (copy / "dvc.lock").is_file()

    second = _run([*dvc, "repro"], copy, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout.lower()

    # A parameter of one stage reruns that stage and what follows it, nothing before it.
    params = (copy / "params.yaml").read_text().replace("test_size: 0.2", "test_size: 0.25")
    (copy / "params.yaml").write_text(params)
    third = _run([*dvc, "repro"], copy, env)
    assert third.returncode == 0, third.stdout + third.stderr
    ran = {
        s
        for s in ("ingest", "validate", "featurize", "split", "train")
        if f"Running stage '{s}'" in third.stdout
    }
    assert ran == {"split", "train"}
