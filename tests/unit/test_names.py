"""The names feature group: a linear model on the names' character n-grams, cross-fitted by artist."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from components.features import TrackFeaturizer
from components.names import (
    NAME_OUTPUT,
    SCRIPT_COLUMNS,
    NameCharacters,
    NameModelSettings,
    fit_name_model,
    name_texts,
    script_shares,
)
from components.tasks import TASK_SPECS
from tests.builders import synthetic_tracks

SMALL = NameModelSettings(n_features=2**12, ngram_min=2, ngram_max=3, alpha=1.0, folds=3)


def _named_tracks(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Tracks whose popularity follows a word in the track name, and whose artists each have their own
    made-up word that also moves popularity (a signal only a model that saw the artist can use)."""
    rng = np.random.default_rng(seed)
    tracks = synthetic_tracks(n, seed)
    remix = rng.random(n) < 0.3
    artist_word = tracks["artists"].str.split(";").str[0].map(lambda a: "".join(reversed(a)))
    artist_effect = tracks["artists"].map(lambda a: (sum(map(ord, a)) % 7) * 4.0)  # stable across runs
    tracks["track_name"] = np.where(remix, "sunny remix ", "quiet ballad ") + artist_word
    tracks["popularity"] = (20 + 40 * remix + artist_effect + rng.normal(0, 3, n)).clip(0, 100)
    return tracks


def test_the_names_output_learns_words_shared_across_artists() -> None:
    tracks = _named_tracks()
    train, test = tracks.iloc[:1200], tracks.iloc[1200:]
    featurizer = TrackFeaturizer(groups=("names",), names=SMALL)
    features = featurizer.fit_transform(train, train["popularity"])
    assert list(features.columns) == [NAME_OUTPUT, *SCRIPT_COLUMNS]
    held_out = featurizer.transform(test)[NAME_OUTPUT]
    assert np.corrcoef(held_out, test["popularity"])[0, 1] > 0.7


def test_training_rows_are_encoded_as_an_unseen_artist_would_be() -> None:
    from sklearn.model_selection import KFold

    from components.names import NameCharacters, NameModel, hashed_ngrams

    tracks = _named_tracks(seed=1)
    y = tracks["popularity"].to_numpy()
    artists = tracks["artists"].str.split(";").str[0].to_numpy()
    texts = name_texts(tracks["track_name"], tracks["album_name"], tracks["artists"])
    fitted = fit_name_model(texts, y, artists, SMALL)
    # The artist's own word moves popularity. Folds by row let a training row's artist (in other folds) teach
    # the model that word, which a held-out artist never offers; folds by artist do not.
    occurrences = hashed_ngrams(NameCharacters.of(texts), SMALL)
    by_row = np.empty(len(y))
    for fit_rows, scored in KFold(n_splits=SMALL.folds, shuffle=True, random_state=0).split(texts):
        fold = NameModel(SMALL).fit(occurrences.take(fit_rows), y[fit_rows])
        by_row[scored] = fold.predict(occurrences.take(scored))
    grouped_error = np.mean((fitted.out_of_fold - y) ** 2)
    by_row_error = np.mean((by_row - y) ** 2)
    assert grouped_error > 1.3 * by_row_error, (grouped_error, by_row_error)


def test_the_hashed_ngrams_are_the_texts_character_ngrams() -> None:
    from components.names import NameCharacters, hashed_ngrams

    settings = NameModelSettings(n_features=2**20, ngram_min=2, ngram_max=3, alpha=1.0, folds=2)
    texts = ["abab", "", "ba", "\ud800x"]  # a lone surrogate (valid JSON) does not fail
    occurrences = hashed_ngrams(NameCharacters.of(texts), settings)
    counts = occurrences.counts(settings.n_features)
    for row, text in enumerate(texts):
        padded = f" {text} " if text else ""
        grams = [padded[i : i + n] for n in (2, 3) for i in range(len(padded) - n + 1)]
        # As many occurrences as n-grams, as many distinct columns as distinct n-grams (no collision at 2^20).
        assert counts[row].sum() == len(grams)
        assert counts[row].nnz == len(set(grams))
    # The same text hashes alike alone and in a batch.
    alone = hashed_ngrams(NameCharacters.of(["ba"]), settings).counts(settings.n_features)
    assert (alone[0] != counts[2]).nnz == 0


def test_a_fit_is_computed_once_per_inputs_and_deterministic() -> None:
    tracks = _named_tracks(600, seed=2)
    texts = name_texts(tracks["track_name"], tracks["album_name"], tracks["artists"])
    y = tracks["popularity"].to_numpy()
    groups = tracks["artists"].to_numpy()
    first = fit_name_model(texts, y, groups, SMALL)
    assert fit_name_model(list(texts), y.copy(), groups.copy(), SMALL) is first
    other = fit_name_model(texts, y + 1.0, groups, SMALL)
    assert other is not first
    np.testing.assert_allclose(other.out_of_fold, first.out_of_fold + 1.0, atol=1e-3)
    # A copy made by pickling (as a logged model is) predicts the same.
    restored = pickle.loads(pickle.dumps(first.model))
    np.testing.assert_array_equal(restored.predict_texts(texts), first.model.predict_texts(texts))


def test_rows_without_names_get_the_training_mean() -> None:
    tracks = _named_tracks(900, seed=3)
    featurizer = TrackFeaturizer(groups=("audio", "names"), names=SMALL).fit(tracks, tracks["popularity"])
    nameless = tracks.head(3).copy()
    nameless[["track_name", "album_name", "artists"]] = None
    features = featurizer.transform(nameless)
    assert features[NAME_OUTPUT].tolist() == pytest.approx([tracks["popularity"].mean()] * 3)
    assert (features[list(SCRIPT_COLUMNS)] == 0).all().all()
    assert name_texts(np.array([None, "  "]), np.array([None, ""]), np.array([pd.NA, None])) == ["", ""]


def test_script_shares() -> None:
    shares = script_shares(NameCharacters.of(["abc дом", "東京 tokyo", "123 !", "서울"]))
    column = {name: k for k, name in enumerate(SCRIPT_COLUMNS)}
    assert shares[0, column["script__latin"]] == pytest.approx(3 / 6)
    assert shares[0, column["script__cyrillic"]] == pytest.approx(3 / 6)
    assert shares[1, column["script__han"]] == pytest.approx(2 / 7)
    assert shares[2].sum() == 0
    assert shares[3, column["script__hangul"]] == 1.0


def test_the_names_group_needs_its_settings_and_stays_out_of_the_genre_task() -> None:
    tracks = _named_tracks(300)
    with pytest.raises(ValueError, match=r"train\.names"):
        TrackFeaturizer(groups=("names",)).fit(tracks, tracks["popularity"])
    assert "names" not in TASK_SPECS["genre"].feature_groups(("audio", "names"))
    assert "names" in TASK_SPECS["popularity"].feature_groups(("audio", "names"))
