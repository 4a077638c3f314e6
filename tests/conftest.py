"""Shared fixtures: small data built from the real dataset, and throwaway project roots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.params import Params
from trackflow.config import load_params
from trackflow.paths import ProjectPaths
from trackflow.process import configure_process

# The test run is an entry point like the CLI: passive OpenMP waits, the headless plotting backend.
configure_process()

REPO = Path(__file__).resolve().parents[1]


TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries the marker of its tier, its folder: `pytest -m "not e2e"` selects by it."""
    for item in items:
        tier = next((t for t in TIERS if f"{os.sep}tests{os.sep}{t}{os.sep}" in str(item.path)), None)
        if tier is not None:
            item.add_marker(tier)


def repo_params() -> Params:
    """params.yaml as committed: the only source of parameter values (the schema has no defaults)."""
    return load_params(REPO / "params.yaml")


def real_dataset_path() -> Path | None:
    """The real dataset: TRACKS_CSV, else the shared copy beside the checkout."""
    candidates = [os.environ.get("TRACKS_CSV"), REPO.parent / "shared" / "data" / "spotify_tracks.csv.gz"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def audio_dir() -> Path | None:
    """The real audio clips: TRACKFLOW_AUDIO_DIR, else the shared copy beside the checkout."""
    candidate = Path(os.environ.get("TRACKFLOW_AUDIO_DIR") or REPO.parent / "shared" / "data" / "audio")
    return candidate if candidate.is_dir() and any(candidate.glob("*.ogg")) else None


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    folder = audio_dir()
    if folder is None:
        pytest.skip(
            "real audio clips not found: set TRACKFLOW_AUDIO_DIR or place the librosa example clips in "
            "../shared/data/audio (see SOURCE.md there)"
        )
    return folder


@pytest.fixture(scope="session")
def real_csv() -> Path:
    path = real_dataset_path()
    if path is None:
        pytest.skip("real dataset not found: set TRACKS_CSV or place ../shared/data/spotify_tracks.csv.gz")
    return path


@pytest.fixture(scope="session")
def real_frame(real_csv: Path) -> pd.DataFrame:
    """The real file in its upstream layout (first column: the unnamed index), all as read by pandas."""
    frame = pd.read_csv(real_csv, keep_default_na=False, dtype=str)
    return frame.rename(columns={"Unnamed: 0": ""})  # pandas renames the empty header; keep it as upstream


def sample_rows(frame: pd.DataFrame, n_tracks: int, seed: int) -> pd.DataFrame:
    """All listing rows of `n_tracks` random tracks, so that multi-genre tracks stay whole."""
    rng = np.random.default_rng(seed)
    ids = frame["track_id"].unique()
    chosen = set(rng.choice(ids, size=min(n_tracks, len(ids)), replace=False))
    return frame[frame["track_id"].isin(chosen)]


@pytest.fixture(scope="session")
def sample_csv(real_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 15,000 real listing rows in the upstream layout, as a plain CSV."""
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    sample_rows(real_frame, 12_000, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def small_sample_csv(real_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 6,000 real listing rows (5,000 tracks): for the tests that run the whole chain more than once
    in subprocesses (dvc repro), where the rows are not what is checked."""
    path = tmp_path_factory.mktemp("data") / "small_sample.csv"
    sample_rows(real_frame, 5_000, seed=7).to_csv(path, index=False)
    return path


def fast_params(root: Path, **overrides: object) -> None:
    """Shrink the budgets so that end-to-end tests stay quick; the pipeline is otherwise the real one.
    `overrides` use `__` for nesting: fast_params(root, train__tasks=["popularity"])."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ablation"]["lightgbm"]["n_estimators"] = 100
    params["train"]["baseline"]["n_estimators"] = 10
    # 2^14 hashed n-grams and 2 folds: every logged model carries the name model's weights (2^18 of them by
    # default), and every training test fits it.
    params["train"]["names"].update(hash_features=2**14, folds=2, genre_hash_features=2**12)
    params["train"]["explain_background_rows"] = 10
    params["evaluate"]["explain_rows"] = 300
    params["train"]["families"] = ["lightgbm", "random_forest"]
    params["train"]["profiles"]["default"] = {
        "n_trials": 2,
        "timeout_s": 600,  # a safety net only: a study cut short by it would not be reproducible
        "cv_folds": 2,
        "max_tune_rows": 1500,
        "max_train_rows": None,
    }
    discovery = params["discovery"]  # quadratic or iterative parts, shrunk like the training budget
    discovery["clusters"].update(k_range=[8, 12], n_init=1, score_sample=1500)
    discovery["density"]["sample"] = 2000
    discovery["outliers"].update(n_estimators=50, ae_epochs=3, eval_rows=500)
    discovery["similar"]["eval_queries"] = 300
    discovery["playlist"]["eval_seed_sets"] = 3
    discovery["map"]["tsne_sample"] = 500
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(parent: Path, **overrides: object) -> Path:
    """A throwaway project root: params.yaml (fast), configs/; its MLflow sqlite store lands inside."""
    root = parent / "project"
    root.mkdir()
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")  # a trackflow project holds both files
    fast_params(root, **overrides)
    return root


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; unset, each test's stages use the store of the
    project they work on (params.yaml), whatever an earlier test pointed MLflow at."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield make_project(tmp_path)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API for the flow tests (the real engine, an isolated database)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


TRAINED_TASKS = ("popularity", "genre", "hit")


@pytest.fixture(scope="session")
def trained_project(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, prefect_harness: None
) -> Iterator[Path]:
    """One real training flow run (every task, two families, tiny budget) on the real sample, shared by the
    tests that need champions. It is read only: a test that writes (registers, scores, retrains) works on
    a copy (copy_project), so no test depends on another's order."""
    from flows.training import training

    root = make_project(tmp_path_factory.mktemp("flow"))
    with pytest.MonkeyPatch.context() as patch:  # only for this run: later tests read the real TRACKS_CSV
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("TRACKS_CSV", str(sample_csv))
        result = training(root=str(root), fetch=True)
    selected = {t: result["tasks"][t]["evaluate"]["selected"] for t in TRAINED_TASKS}
    recorded = {"selected": selected, "mlflow_parent_run_id": result["mlflow_parent_run_id"]}
    (root / "result.yaml").write_text(yaml.safe_dump(recorded))
    yield root


@pytest.fixture(scope="session")
def discovered_project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained project with discovery fitted and registered (similar-tracks, clusters,
    outliers champions), shared by the model server's and the explorer's tests. Read only, like
    trained_project: a test that writes works on a copy."""
    from trackflow.stages.common import params_for
    from trackflow.stages.discovery.discover import discover
    from trackflow.stages.discovery.register import register_discovery

    root = copy_project(trained_project, tmp_path_factory.mktemp("discovered"))
    paths = ProjectPaths.at(root)
    discover(paths, params_for(paths))
    register_discovery(paths, params_for(paths))
    return root


def prefect_artifacts(key: str, flow_run_id: object | None = None) -> list:
    """The Prefect artifacts with `key` on the test server, newest first (of one flow run when given)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    criteria: dict = {"key": ArtifactFilterKey(any_=[key])}
    if flow_run_id is not None:
        criteria["flow_run_id"] = ArtifactFilterFlowRunId(any_=[flow_run_id])
    artifact_filter = ArtifactFilter(**criteria)
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC)


def prepared(root: Path) -> ProjectPaths:
    """The project's data stages run, up to the split: what tuning reads (TRACKS_CSV set by the caller)."""
    from trackflow.stages.common import params_for
    from trackflow.stages.data import featurize, fetch_data, ingest, split, validate

    paths = ProjectPaths.at(root)
    fetch_data(paths, params_for(paths))
    for stage in (ingest, validate, featurize, split):
        stage(paths, params_for(paths))
    return paths


def copy_project(source: Path, parent: Path) -> Path:
    """A copy of a project root (data, params, MLflow store) to change without touching the original. The
    copied store's runs still point at the original's artifact folder, which is only read."""
    target = parent / "project-copy"
    shutil.copytree(source, target)
    return target
