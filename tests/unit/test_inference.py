"""The shared inference path (components/inference.py) answers as the path before it did: for every model
family and task kind, for small batches (one thread per call) and large ones, with and without a genre,
with missing audio values; and its featurizer matrix is the frame-built features, value for value."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from components import families as families_module
from components.families import FAMILIES
from components.features import FEATURE_GROUPS, TrackFeaturizer
from components.inference import SMALL_BATCH_ROWS, FeatureCache, reference_outputs
from components.schema import GENRE, InputArrays, model_inputs
from components.task_model import BlendModel, TaskModel
from components.tasks import TASK_SPECS
from components.tuning import fit_final
from tests.builders import TINY_FAMILY_PARAMS, synthetic_tracks
from tests.conftest import repo_params

TINY = TINY_FAMILY_PARAMS
KINDS = {"popularity": "regression", "hit": "binary", "genre": "multiclass"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(families_module, "MAX_THREADS", 1)


def _labels(task: str, tracks: pd.DataFrame) -> tuple[np.ndarray, list[str] | None]:
    if task == "popularity":
        return tracks["popularity"].to_numpy(dtype="float64"), None
    if task == "hit":
        return (tracks["popularity"] >= 60).to_numpy(dtype=int), None
    first = tracks[GENRE].str.split("|").str[0]
    classes = sorted(first.unique())
    return first.map({c: k for k, c in enumerate(classes)}).to_numpy(), classes


def _featurizer(family: str, task: str):
    # The default groups of params.yaml (names included), as training builds them.
    train = repo_params().train
    groups = TASK_SPECS[task].feature_groups(train.feature_groups)
    extra = FAMILIES[family].extra_feature_groups

    def make(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(
            groups=tuple(dict.fromkeys(groups + extra)),
            seed=1,
            scale=needs_scaling,
            names=train.names.settings(),
        )

    return make


@pytest.fixture(scope="module")
def blends() -> dict[str, TaskModel]:
    """A blend of every family per task, with a genre-free fallback for the tasks that read the genre."""
    tracks = synthetic_tracks(700, seed=5)
    models = {}
    for task, kind in KINDS.items():
        spec = TASK_SPECS[task]
        y, classes = _labels(task, tracks)
        inputs = model_inputs(tracks, spec.input_columns)
        n_classes = len(classes) if classes else None
        members, fallbacks = [], []
        for family, params in TINY.items():
            fit = FAMILIES[family]
            make = _featurizer(family, task)
            members.append(fit_final(fit, kind, params, inputs, y, make, 3, "cpu", n_classes))
            if GENRE in inputs.columns:
                genre_free = inputs.assign(**{GENRE: None})
                fallbacks.append(fit_final(fit, kind, params, genre_free, y, make, 3, "cpu", n_classes))
        fallback = BlendModel(fallbacks, kind) if fallbacks else None
        models[task] = TaskModel(task, BlendModel(members, kind), classes, "blend", fallback)
    return models


def _batch(n: int) -> pd.DataFrame:
    rows = synthetic_tracks(max(n, 40), seed=11).head(n).drop(columns=["popularity"])
    rows.loc[rows.index % 3 == 0, GENRE] = None  # the fallback answers these
    rows.loc[rows.index % 7 == 1, "energy"] = np.nan  # imputed by the genre's median
    return rows


@pytest.mark.parametrize("n", [1, 40, SMALL_BATCH_ROWS + 300])
def test_every_family_answers_as_the_path_before(blends: dict[str, TaskModel], n: int) -> None:
    rows = _batch(n)
    cache = FeatureCache()
    for task, model in blends.items():
        fast = model.outputs(rows, cache)  # one cache for the three models, as scoring shares it
        before = reference_outputs(model, rows)
        assert fast.shape == before.shape
        np.testing.assert_allclose(fast, before, rtol=1e-12, atol=1e-12, err_msg=task)
        # Each member alone, through its own public predict, agrees too (no family is left out).
        for member in model.estimator.members:
            name = type(member.steps[-1][1]).__name__
            alone = TaskModel(task, member, model.classes)
            np.testing.assert_allclose(
                alone.outputs(rows), reference_outputs(alone, rows), rtol=1e-12, atol=1e-12, err_msg=name
            )


def test_the_answers_are_those_of_predict_and_predict_proba(blends: dict[str, TaskModel]) -> None:
    rows = _batch(30)
    hit, genre = blends["hit"], blends["genre"]
    assert np.array_equal(hit.predict_proba(rows), hit.outputs(rows))
    assert np.array_equal(hit.predict(rows), hit.outputs(rows)[:, 1])
    assert list(genre.predict(rows)) == [genre.classes[k] for k in genre.outputs(rows).argmax(axis=1)]
    popularity = blends["popularity"].predict(rows)
    assert ((popularity >= 0) & (popularity <= 100)).all()


def test_rows_given_as_arrays_answer_as_rows_given_as_a_frame(blends: dict[str, TaskModel]) -> None:
    rows = _batch(25)
    arrays = InputArrays.of(rows, TASK_SPECS["popularity"].input_columns)
    model = blends["popularity"]
    assert np.array_equal(model.outputs(arrays), model.outputs(rows))
    assert InputArrays.of(rows).frame().equals(model_inputs(rows).reset_index(drop=True))


def test_fitted_models_pickle_without_the_inference_caches(blends: dict[str, TaskModel]) -> None:
    model = blends["hit"]
    model.outputs(_batch(5))  # fills the featurizers' lookups and state keys
    copy = pickle.loads(pickle.dumps(model))
    featurizer = copy.estimator.members[0].steps[0][1]
    assert "_lookups_" not in vars(featurizer) and "_state_key_" not in vars(featurizer)
    assert np.array_equal(copy.outputs(_batch(5)), model.outputs(_batch(5)))


@pytest.mark.parametrize(
    "groups, scale",
    [(("audio", "engineered", "genre"), False), (FEATURE_GROUPS, True), (("audio", "ids"), True)],
)
def test_the_feature_matrix_is_the_frame_built_features(groups: tuple[str, ...], scale: bool) -> None:
    tracks = synthetic_tracks(600, seed=3)
    names = repo_params().train.names.settings()
    featurizer = TrackFeaturizer(groups=groups, scale=scale, names=names).fit(tracks, tracks["popularity"])
    rows = tracks.sample(200, random_state=1).copy()
    rows.loc[rows.index[:5], "energy"] = np.nan
    rows.loc[rows.index[5:8], GENRE] = None
    rows.loc[rows.index[8:10], GENRE] = "not-a-genre|pop"
    rows.loc[rows.index[10:12], "artists"] = None
    rows.loc[rows.index[12:14], ["track_name", "album_name", "artists"]] = None
    frame = featurizer.transform_frame(rows).to_numpy(dtype="float64")
    assert np.array_equal(featurizer.transform_matrix(rows), frame, equal_nan=True)
    assert list(featurizer.transform(rows).columns) == featurizer.feature_names_out_


def test_a_genre_names_prior_answering_first_shares_the_batch_with_the_names_group(
    blends: dict[str, TaskModel],
) -> None:
    """The server answers genre first: its names prior stores the batch's characters, and the popularity
    and hit featurizers' names group then reuse them (a server bug once: their scripts were missing)."""
    from components.name_genres import NameGenreClassifier, NamePrior, texts_of

    tracks = synthetic_tracks(700, seed=5)
    y, classes = _labels("genre", tracks)
    settings = repo_params().train.names.genre_settings()
    classifier = NameGenreClassifier(settings).fit(texts_of(tracks), y, len(classes or []))
    genre = blends["genre"]
    prior = NamePrior(classifier, 0.5)
    pooled = TaskModel("genre", genre.estimator, genre.classes, "blend", names_prior=prior)
    rows = _batch(60)
    rows = rows[rows[GENRE].notna()]  # every row given: popularity reads the very arrays genre read
    cache = FeatureCache()
    models = [pooled, blends["popularity"], blends["hit"]]
    together = [model.outputs(rows, cache) for model in models]
    for shared, alone in zip(together, [model.outputs(rows) for model in models], strict=True):
        np.testing.assert_allclose(shared, alone, rtol=1e-6)
    assert not np.allclose(together[0], genre.outputs(rows))  # the prior did change the answer
