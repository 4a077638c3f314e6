"""The bench's --quick base project from the real dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from bench.harness import (
    Context,
)
from tests.conftest import REPO


def test_quick_base_project(tmp_path: Path, real_csv: Path) -> None:
    """--quick's base project: a git copy of the checkout with the sampled raw data and its own stores."""
    from bench.project import QUICK_FAMILIES, QUICK_TRACKS, make_base

    ctx = Context(
        repo=REPO, work=tmp_path / "work", results=tmp_path / "results", quick=True, tracks_csv=real_csv
    )
    root = make_base(ctx)
    assert (root / "data" / "raw" / "dataset.csv").is_file() and (root / ".git").is_dir()
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["families"] == QUICK_FAMILIES
    assert not (root / "metrics").exists() and not (root / "mlflow" / "mlflow.db").exists()
    raw = pd.read_csv(root / "data" / "raw" / "dataset.csv", dtype=str, keep_default_na=False)
    assert raw["track_id"].nunique() == QUICK_TRACKS and raw.columns[0] in ("", "Unnamed: 0")
    shutil.rmtree(ctx.work)
