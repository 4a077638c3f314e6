"""The model-family registry: every family builds and fits for every task kind, its search space agrees with
configs/families.yaml, pruning is wired to each library's per-iteration hook, and devices resolve safely."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from components import families as families_module
from components.families import FAMILIES, ParamSpec, resolve_device, suggest_params
from components.features import FEATURE_GROUPS, ID_COLUMNS
from components.tasks import TASK_KINDS
from components.torch_mlp import EMBEDDING_COLUMNS, TorchMLPClassifier, TorchMLPRegressor
from tests.builders import TINY_FAMILY_PARAMS
from trackflow.config import load_params, load_search_spaces

REPO = Path(__file__).resolve().parents[2]
SPACES_YAML = REPO / "configs" / "families.yaml"
K = 5  # classes of the multiclass task; class 2 is absent from the training part
TINY = TINY_FAMILY_PARAMS


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # The thread count is not under test: one thread keeps these tiny fits quick on a busy 2-core machine.
    monkeypatch.setattr(families_module, "MAX_THREADS", 1)


def toy_data(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Numeric features plus the two index columns the MLP embeds; targets for the three task kinds."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    X["genre_index"] = rng.integers(0, 4, n)
    X["artist_bucket"] = rng.integers(0, 16, n)
    multiclass = np.clip(np.round(X["x0"].to_numpy() + 2), 0, K - 1).astype(int)
    return X, {
        "regression": 10 * X["x0"].to_numpy() + rng.normal(size=n),
        "binary": (X["x1"] > 0).astype(int).to_numpy(),
        "multiclass": multiclass,
    }


def split(n: int, y: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    train = np.arange(n) < int(n * 0.7)
    if task == "multiclass":
        # The label 2 exists only in the validation part: the fold's model never sees it.
        train &= y != 2
    return np.flatnonzero(train), np.flatnonzero(~train)


def n_classes_of(task: str) -> int | None:
    return K if task == "multiclass" else None


@pytest.mark.parametrize("task", TASK_KINDS)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_fits_every_task(name: str, task: str) -> None:
    X, targets = toy_data()
    y = targets[task]
    train, valid = split(len(X), y, task)
    assert task != "multiclass" or (2 in y[valid] and 2 not in y[train])
    family = FAMILIES[name]
    estimator = family.build(task, TINY[name], seed=0, device="cpu", n_classes=n_classes_of(task))
    family.fit(estimator, X.iloc[train], y[train], eval_set=(X.iloc[valid], y[valid]))

    prediction = np.asarray(estimator.predict(X.iloc[valid]))
    assert prediction.shape == (len(valid),)
    if task != "regression":
        k = 2 if task == "binary" else K
        proba = estimator.predict_proba(X.iloc[valid])
        assert proba.shape == (len(valid), k)
        assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        assert list(estimator.classes_) == list(range(k))
        assert set(np.unique(prediction)) <= set(range(k))
    # The fitted model is what gets logged: it must pickle (no Optuna trial or callback left inside).
    restored = pickle.loads(pickle.dumps(estimator))
    assert np.allclose(np.asarray(restored.predict(X.iloc[valid]), dtype=float), prediction.astype(float))

    # Without an eval set (the final fit) early stopping is off and the fit still works.
    final = family.build(task, TINY[name], seed=0, device="cpu", n_classes=n_classes_of(task))
    family.fit(final, X.iloc[train], y[train], sample_weight=np.ones(len(train)))
    assert np.asarray(final.predict(X.iloc[valid])).shape == (len(valid),)


def test_extra_feature_groups_exist() -> None:
    for family in FAMILIES.values():
        assert set(family.extra_feature_groups) <= set(FEATURE_GROUPS), family.name
    # The MLP's extra group yields exactly the integer columns it embeds.
    assert FAMILIES["mlp"].extra_feature_groups == ("ids",)
    assert tuple(ID_COLUMNS) == EMBEDDING_COLUMNS


def range_end(space: dict[str, ParamSpec], end: Literal["low", "high"]) -> dict[str, Any]:
    """The point of `space` at one end of every range (first or last choice of a categorical)."""
    return {
        name: (spec.choices[0 if end == "low" else -1] if spec.type == "categorical" else getattr(spec, end))
        for name, spec in space.items()
    }


def test_registry_and_yaml_agree() -> None:
    raw = yaml.safe_load(SPACES_YAML.read_text())["families"]
    assert set(raw) == set(FAMILIES)
    for task in (None, *TASK_KINDS):
        spaces = load_search_spaces(SPACES_YAML, task)
        assert set(spaces) == set(FAMILIES)
        for name, space in spaces.items():
            assert space, name
            assert set(space) <= FAMILIES[name].param_names
            # Every point of the space is buildable: the low end of each range (cheap) for each task.
            for kind in TASK_KINDS:
                FAMILIES[name].build(
                    kind, range_end(space, "low"), seed=0, device="cpu", n_classes=n_classes_of(kind)
                )
    # The 114-class task gets cheaper boosting ranges than the default.
    multiclass = load_search_spaces(SPACES_YAML, "multiclass")["lightgbm"]["n_estimators"]
    default = load_search_spaces(SPACES_YAML)["lightgbm"]["n_estimators"]
    assert multiclass.high < default.high


def test_full_profile_widens_the_multiclass_ranges_only() -> None:
    profiles = load_params(REPO / "params.yaml").train.profiles
    for kind in TASK_KINDS:
        base = load_search_spaces(SPACES_YAML, kind, known_profiles=profiles)
        # The default profile has no entries of its own: `make run` tunes exactly the task kind's space.
        assert load_search_spaces(SPACES_YAML, kind, "default", profiles) == base
        full = load_search_spaces(SPACES_YAML, kind, "full", profiles)
        if kind != "multiclass":
            assert full == base, kind
            continue
        for name, space in full.items():
            # Every point of the wider space still builds, at both ends of each range.
            for end in ("low", "high"):
                FAMILIES[name].build(
                    kind, range_end(space, end), seed=0, device="cpu", n_classes=n_classes_of(kind)
                )
    narrow = load_search_spaces(SPACES_YAML, "multiclass")
    wide = load_search_spaces(SPACES_YAML, "multiclass", "full", profiles)
    for name, ceiling in (
        ("lightgbm", "n_estimators"),
        ("xgboost", "n_estimators"),
        ("random_forest", "max_depth"),
    ):
        assert wide[name][ceiling].high > narrow[name][ceiling].high, name
    assert wide["lightgbm"]["num_leaves"].low < narrow["lightgbm"]["num_leaves"].low
    assert wide["catboost"] == narrow["catboost"]
    # The profile layer goes on top of the task kind's overrides, which go on top of `space`.
    assert wide["lightgbm"]["early_stopping_rounds"] == narrow["lightgbm"]["early_stopping_rounds"]
    assert (
        narrow["lightgbm"]["early_stopping_rounds"]
        != load_search_spaces(SPACES_YAML)["lightgbm"]["early_stopping_rounds"]
    )


def test_a_profile_of_the_search_spaces_must_be_a_tuning_profile(tmp_path: Path) -> None:
    path = write_spaces(
        tmp_path, lambda f: f["lightgbm"]["profiles"].update(ful={"multiclass": {"num_leaves": 15}})
    )
    with pytest.raises(ValueError, match=r"unknown tuning profiles \['ful'\]"):
        load_search_spaces(path, "multiclass", "full", known_profiles=("default", "full"))
    # Without the list of profiles (a bare read of the file) the name cannot be checked, only its contents.
    assert load_search_spaces(path, "multiclass", "ful")["lightgbm"]["num_leaves"] == ParamSpec.fixed(15)


def write_spaces(tmp_path: Path, mutate: Any) -> Path:
    raw = yaml.safe_load(SPACES_YAML.read_text())
    mutate(raw["families"])
    path = tmp_path / "families.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda f: f["lightgbm"]["space"].update(num_leafs={"type": "int", "low": 2, "high": 8}),
            "num_leafs",
        ),
        (lambda f: f["mlp"].update(overrides={"multiclass": {"hidden_units": 64}}), "hidden_units"),
        (lambda f: f.update(svm={"space": {}}), "unknown ['svm']"),
        (lambda f: f.pop("catboost"), "missing ['catboost']"),
        (lambda f: f["xgboost"]["overrides"].update(ranking={}), "unknown task kinds"),
        (
            lambda f: f["xgboost"]["profiles"]["full"].update(ranking={}),
            "xgboost.profiles.full: unknown task",
        ),
        (
            lambda f: f["lightgbm"]["profiles"]["full"]["multiclass"].update(num_leafs=8),
            "lightgbm.profiles.full.multiclass: unknown parameters ['num_leafs']",
        ),
        (lambda f: f["mlp"].update(profile={"full": {}}), "unknown keys ['profile']"),
        (lambda f: f["xgboost"]["space"].update(max_depth={"type": "int", "lo": 2, "high": 8}), "'lo'"),
        (
            lambda f: f["lightgbm"]["space"].update(learning_rate={"type": "float", "low": 1, "high": 0.1}),
            "low",
        ),
        (
            lambda f: f["lightgbm"]["space"].update(reg_alpha={"type": "float", "low": "1e-3", "high": 1}),
            "1e-3",
        ),
    ],
    ids=[
        "unknown-param",
        "unknown-param-in-override",
        "unknown-family",
        "missing-family",
        "unknown-task",
        "unknown-task-in-profile",
        "unknown-param-in-profile",
        "unknown-block-key",
        "unknown-spec-key",
        "low-above-high",
        "yaml-string-number",
    ],
)
def test_bad_search_spaces_are_rejected(tmp_path: Path, mutate: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_search_spaces(write_spaces(tmp_path, mutate))
    assert message in str(error.value)


def test_unknown_params_are_rejected_at_build_too() -> None:
    with pytest.raises(ValueError, match="unknown parameters"):
        FAMILIES["lightgbm"].build("regression", {"num_leafs": 8}, seed=0, device="cpu")
    with pytest.raises(ValueError, match="n_classes"):
        FAMILIES["xgboost"].build("multiclass", {}, seed=0, device="cpu")


def test_suggest_params_stays_in_range_and_records_fixed_values() -> None:
    space = {
        "a": ParamSpec("int", low=2, high=64, log=True),
        "b": ParamSpec("float", low=0.1, high=0.5),
        "c": ParamSpec("categorical", choices=("x", "y")),
        "fixed": ParamSpec.fixed(30),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        params = suggest_params(trial, space)
        assert 2 <= params["a"] <= 64 and isinstance(params["a"], int)
        assert 0.1 <= params["b"] <= 0.5
        assert params["c"] in ("x", "y")
        assert params["fixed"] == 30 and trial.params["fixed"] == 30


def test_device_resolution_never_requires_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" without a GPU is silent
        assert resolve_device("auto") == "cpu"
    with pytest.warns(UserWarning, match="CUDA is not available"):
        assert resolve_device("cuda") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")  # type: ignore[arg-type]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    # What "cuda" selects per library (building only: nothing runs on a GPU here).
    assert FAMILIES["xgboost"].build("regression", {}, 0, "cuda").get_params()["device"] == "cuda"
    assert FAMILIES["catboost"].build("regression", {}, 0, "cuda").get_params()["task_type"] == "GPU"
    assert FAMILIES["mlp"].build("regression", {}, 0, "cuda").device == "cuda"
    assert "device" not in FAMILIES["lightgbm"].build("regression", {}, 0, "cuda").get_params()


def test_mlp_on_cuda_without_gpu_falls_back_to_cpu() -> None:
    X, targets = toy_data(n=80)
    model = TorchMLPRegressor(max_epochs=1, hidden_size=8, device="cuda")
    with pytest.warns(UserWarning, match="CUDA"):
        model.fit(X, targets["regression"])
    assert model.predict(X).shape == (80,)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost", "mlp"])
def test_per_iteration_pruning_is_wired(name: str) -> None:
    """With a pruner that always prunes, the library's iteration / epoch hook reports and raises."""
    X, targets = toy_data()
    y = targets["binary"]
    train, valid = split(len(X), y, "binary")
    family = FAMILIES[name]
    estimator = family.build(
        "binary", {**TINY[name], **({"max_epochs": 5} if name == "mlp" else {})}, 0, "cpu"
    )
    study = optuna.create_study(direction="minimize", pruner=AlwaysPrune())
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        family.fit(estimator, X.iloc[train], y[train], eval_set=(X.iloc[valid], y[valid]), trial=trial)
    reported = study.trials[0].intermediate_values
    assert reported and min(reported) <= 1  # pruned at the first iteration / epoch, not after training


def test_mlp_embeds_index_columns_and_is_deterministic() -> None:
    X, targets = toy_data()
    y = targets["multiclass"]
    settings = {"n_classes": K, "max_epochs": 4, "hidden_size": 16, "seed": 3, "embed_artist": True}
    first = TorchMLPClassifier(**settings).fit(X, y)
    second = TorchMLPClassifier(**settings).fit(X, y)
    assert first.embedding_columns_ == ["genre_index", "artist_bucket"]
    assert not {"genre_index", "artist_bucket"} & set(first.numeric_columns_)
    # By default the artist bucket is left out altogether (neither embedded nor fed as a number).
    default = TorchMLPClassifier(n_classes=K, max_epochs=1, hidden_size=8).fit(X, y)
    assert default.embedding_columns_ == ["genre_index"]
    assert "artist_bucket" not in default.numeric_columns_
    assert [e.num_embeddings for e in first.network_.embeddings] == [4 + 1, 16 + 1]
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))
    # Unseen or missing indices at scoring time share the reserved row instead of failing.
    odd = X.head(3).assign(genre_index=[99, -1, np.nan], artist_bucket=[1000, 2, 3])
    assert first.predict_proba(odd).shape == (3, K)
    with pytest.raises(ValueError, match="integer indices"):
        first.predict_proba(X.head(3).assign(genre_index=[0.5, -0.2, 1.3]))  # e.g. scaled by mistake


def test_mlp_early_stopping_and_epoch_callback() -> None:
    X, targets = toy_data()
    y = targets["regression"]
    seen: list[tuple[int, float]] = []
    model = TorchMLPRegressor(max_epochs=30, patience=2, learning_rate=0.3, hidden_size=8, seed=0)
    model.fit(X[:150], y[:150], eval_set=(X[150:], y[150:]), epoch_callback=lambda e, v: seen.append((e, v)))
    assert [e for e, _ in seen] == list(range(len(seen)))
    assert model.best_val_loss_ == min(v for _, v in seen)
    # Stopped early: a huge learning rate stops improving well before 30 epochs.
    assert len(seen) < 30


def test_mlp_fits_in_parallel_threads_stay_reproducible() -> None:
    from concurrent.futures import ThreadPoolExecutor

    X, targets = toy_data()
    y = targets["regression"]

    def fit(seed: int) -> np.ndarray:
        return TorchMLPRegressor(max_epochs=3, hidden_size=16, dropout=0.3, seed=seed).fit(X, y).predict(X)

    alone = fit(1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(fit, [1, 2, 1]))
    assert np.array_equal(together[0], alone) and np.array_equal(together[2], alone)
