"""SHAP values per raw input column: native for the boosting libraries, permutation elsewhere, a blend's
as its members' mean."""

from __future__ import annotations

import catboost
import numpy as np
import pandas as pd
import pytest

from components import families as families_module
from components.explain import NAMES_GROUP, NATIVE, PERMUTATION, explain, raw_group
from components.families import FAMILIES
from components.features import TrackFeaturizer
from components.schema import GENRE, model_inputs
from components.task_model import BlendModel
from components.tuning import fit_final
from tests.builders import TINY_FAMILY_PARAMS, synthetic_tracks
from tests.conftest import repo_params

KINDS = {"popularity": "regression", "hit": "binary", "genre": "multiclass"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(families_module, "MAX_THREADS", 1)


def _fit(family: str, kind: str, tracks: pd.DataFrame):
    # The default groups of each task (the genre task gets neither its label nor names).
    groups = ("audio", "engineered") if kind == "multiclass" else ("audio", "engineered", "genre", "names")
    names = repo_params().train.names.settings()

    def make(needs_scaling: bool) -> TrackFeaturizer:
        extra = FAMILIES[family].extra_feature_groups
        return TrackFeaturizer(groups=groups + extra, seed=1, scale=needs_scaling, names=names)

    if kind == "regression":
        y, n_classes = tracks["popularity"].to_numpy(), None
    elif kind == "binary":
        y, n_classes = (tracks["popularity"] >= 55).to_numpy(dtype=int), None
    else:
        classes = sorted(tracks[GENRE].unique())
        y, n_classes = tracks[GENRE].map({c: k for k, c in enumerate(classes)}).to_numpy(), len(classes)
    inputs = model_inputs(tracks)
    return fit_final(FAMILIES[family], kind, TINY_FAMILY_PARAMS[family], inputs, y, make, 3, "cpu", n_classes)


@pytest.mark.parametrize("kind", list(KINDS.values()))
def test_every_family_is_explained_per_raw_column(kind: str) -> None:
    tracks = synthetic_tracks(500, seed=2)
    rows = model_inputs(tracks.head(60))
    for family in TINY_FAMILY_PARAMS:
        explanation = explain(_fit(family, kind, tracks), rows, kind, seed=0)
        expected = NATIVE if family in ("lightgbm", "xgboost", "catboost") else PERMUTATION
        assert explanation.methods == (expected,), family
        values = explanation.values
        assert len(values) == 60 and np.isfinite(values.to_numpy()).all(), family
        assert "danceability" in values.columns and "energy+danceability" in values.columns, family
        if kind != "multiclass":
            assert NAMES_GROUP in values.columns and GENRE in values.columns, family


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "catboost"])
def test_multiclass_values_are_those_of_the_predicted_class(family: str) -> None:
    from components.explain import _native

    tracks = synthetic_tracks(400, seed=8)
    pipeline = _fit(family, "multiclass", tracks)
    featurizer, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    matrix = featurizer.transform_matrix(model_inputs(tracks.head(30)))
    raw = {
        "lightgbm": lambda: model.booster_.predict(matrix, raw_score=True),
        "xgboost": lambda: model.get_booster().inplace_predict(matrix, predict_type="margin"),
        "catboost": lambda: catboost.CatBoost.predict(model, matrix, prediction_type="RawFormulaVal"),
    }[family]()
    # The rows whose predicted class is the most common one: their expected value (per class) is the same.
    predicted = np.argmax(raw, axis=1)
    same = predicted == np.bincount(predicted).argmax()
    classes = predicted[same]
    values = _native(model, matrix[same], "multiclass", classes)
    # SHAP values and the class's expected value add up to its raw score: rows differ by their sums.
    chosen = raw[same][np.arange(len(classes)), classes]
    assert len(classes) >= 3
    np.testing.assert_allclose(np.diff(values.sum(axis=1)), np.diff(chosen), atol=1e-4)
    wrong = _native(model, matrix[same], "multiclass", (classes + 1) % raw.shape[1])
    assert not np.allclose(np.diff(wrong.sum(axis=1)), np.diff(chosen), atol=1e-4)


def test_native_values_add_up_to_the_prediction() -> None:
    tracks = synthetic_tracks(600, seed=3)
    model = _fit("lightgbm", "regression", tracks)
    rows = model_inputs(tracks.head(40))
    values = explain(model, rows, "regression", seed=0).values
    # SHAP values plus the expected value are the prediction: the rows differ by their values' difference.
    predicted = model.predict(rows)
    np.testing.assert_allclose(values.sum(axis=1).diff()[1:], np.diff(predicted), atol=1e-6)
    # The label follows genre and danceability (tests/builders.py): they lead the importance.
    assert set(explain(model, model_inputs(tracks.head(300)), "regression", 0).importance().index[:2]) == {
        GENRE,
        "danceability",
    }


def test_a_blend_is_its_members_mean() -> None:
    tracks = synthetic_tracks(400, seed=4)
    members = [_fit("lightgbm", "binary", tracks), _fit("mlp", "binary", tracks)]
    rows = model_inputs(tracks.head(30))
    blend = explain(BlendModel(members, "binary"), rows, "binary", seed=0)
    assert blend.methods == (NATIVE, PERMUTATION)
    assert blend.estimate == "shap+permutation"
    # The LightGBM member's values are on the log-odds: they add up to its own raw score.
    lightgbm = members[0]
    raw = lightgbm.steps[-1][1].booster_.predict(lightgbm.steps[0][1].transform_matrix(rows), raw_score=True)
    alone = explain(lightgbm, rows, "binary", seed=0).values
    np.testing.assert_allclose(np.diff(alone.sum(axis=1)), np.diff(raw), atol=1e-6)


def test_raw_groups() -> None:
    assert raw_group("genre__pop") == GENRE
    assert raw_group("log_duration") == "duration_ms"
    assert raw_group("names_linear") == raw_group("script__latin") == NAMES_GROUP
    with pytest.raises(KeyError, match="sparkle"):
        raw_group("sparkle")


def test_per_prediction_reasons_for_one_row_and_for_rows_without_a_genre() -> None:
    from components.task_model import TaskModel

    tracks = synthetic_tracks(500, seed=6)
    inputs = model_inputs(tracks)
    members = [_fit("xgboost", "regression", tracks), _fit("mlp", "regression", tracks)]
    genre_free = tracks.assign(**{GENRE: None})
    fallbacks = [_fit("xgboost", "regression", genre_free), _fit("mlp", "regression", genre_free)]
    background = inputs.sample(20, random_state=0)
    model = TaskModel(
        "popularity",
        BlendModel(members, "regression"),
        None,
        "blend",
        BlendModel(fallbacks, "regression"),
        background,
    )
    rows = inputs.head(2).copy()
    rows.loc[rows.index[1], GENRE] = None
    reasons = model.reasons(rows, k=3)
    assert [len(r) for r in reasons] == [3, 3]
    assert {r["estimate"] for row in reasons for r in row} == {"shap+permutation"}
    # The MLP's estimate holds for one row: against the background rows, not a permutation within the row.
    single = model.reasons(rows.head(1), k=40)[0]
    assert any(r["contribution"] != 0 for r in single)
    assert single[0]["column"] in {GENRE, "danceability", "energy+danceability"}
    # The row without a genre is explained by the fallback, which never learned from a genre.
    without = {r["column"]: r["contribution"] for r in model.reasons(rows.tail(1), k=40)[0]}
    assert without.get(GENRE, 0.0) == 0.0 and len(without) > 5
    magnitudes = [abs(r["contribution"]) for r in single]
    assert magnitudes == sorted(magnitudes, reverse=True)
