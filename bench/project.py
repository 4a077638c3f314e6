"""The suite's own project roots: a fresh copy of the repository (its tracked and untracked, not ignored
files) in a git repository of its own, with the raw data fetched into it, so that the user's data/, mlflow/
and optuna/ are never read or written."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench.harness import BenchError, Context, run_command, say, tool

# Produced state of the checkout, never part of a fresh project.
EXCLUDED = ("data/", "metrics/", "mlflow/", "optuna/", "reports/", "bench/results/", ".prefect/", "dvc.lock")
GIT_IDENTITY = ["-c", "user.name=trackflow-bench", "-c", "user.email=bench@trackflow.invalid"]

# --quick: a sample of whole tracks and tiny tuning budgets, for developing the suite, never for numbers.
QUICK_TRACKS = 2500
QUICK_PROFILE = {
    "n_trials": 2,
    "timeout_s": 600,
    "cv_folds": 2,
    "max_tune_rows": 1000,
    "max_train_rows": None,
}
QUICK_FAMILIES = ["lightgbm", "random_forest"]


def repository_files(repo: Path) -> list[str]:
    """The files a fresh clone plus the working tree's new files would hold."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True, text=True
    )
    if listing.returncode != 0:
        raise BenchError(f"{repo} is not a git checkout: {listing.stderr.strip()}")
    return [name for name in listing.stdout.splitlines() if name and not name.startswith(EXCLUDED)]


def find_tracks_csv(ctx: Context) -> Path:
    candidates = [
        ctx.tracks_csv,
        Path(os.environ["TRACKS_CSV"]) if os.environ.get("TRACKS_CSV") else None,
        ctx.repo / "data" / "raw" / "dataset.csv",
    ]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise BenchError(
        "no dataset: pass --tracks-csv, set TRACKS_CSV, or run `make data` (data/raw/dataset.csv)"
    )


def sample_dataset(source: Path, target: Path, n_tracks: int, seed: int = 7) -> Path:
    """All listing rows of `n_tracks` random tracks (multi-genre tracks stay whole), upstream layout."""
    import numpy as np
    import pandas as pd

    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rt", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame = frame.rename(columns={"Unnamed: 0": ""})  # keep the upstream empty header of the index column
    ids = frame["track_id"].unique()
    chosen = set(np.random.default_rng(seed).choice(ids, size=min(n_tracks, len(ids)), replace=False))
    target.parent.mkdir(parents=True, exist_ok=True)
    frame[frame["track_id"].isin(chosen)].to_csv(target, index=False)
    return target


def quick_params(root: Path) -> None:
    """Tiny budgets in the copy's params.yaml (--quick only)."""
    path = root / "params.yaml"
    params: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["train"]["families"] = QUICK_FAMILIES
    params["train"]["profiles"]["default"] = dict(QUICK_PROFILE)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_base(ctx: Context) -> Path:
    """work/base: the repository's files, committed to a new git repository, with data/raw/dataset.csv."""
    root = ctx.base_root
    if root.exists():
        shutil.rmtree(root)
    files = repository_files(ctx.repo)
    for name in files:
        source = ctx.repo / name
        if source.is_file():  # a deleted but still listed file is skipped
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    say(f"project copy: {len(files)} files from {ctx.repo} in {root}")
    dataset = find_tracks_csv(ctx)
    if ctx.quick:
        quick_params(root)
        dataset = sample_dataset(dataset, ctx.work / "sample.csv", QUICK_TRACKS)
        say(f"--quick: {QUICK_TRACKS} tracks sampled, families {QUICK_FAMILIES}, profile {QUICK_PROFILE}")
    git = ["git", *GIT_IDENTITY]
    for step, cmd in enumerate(
        (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "benchmark copy"])
    ):
        run_command(ctx, f"setup-git-{step}", cmd, root)
    run_command(
        ctx, "setup-fetch-data", [tool("trackflow"), "fetch-data", "--tracks-csv", str(dataset)], root
    )
    say(f"raw data: {dataset} -> {root / 'data' / 'raw' / 'dataset.csv'}")
    return root


def copy_root(source: Path, target: Path) -> Path:
    """A second project root from a first (git repository, data and stores included)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    return target
