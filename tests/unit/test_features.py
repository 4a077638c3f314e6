from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.baseline import fit_baseline
from components.catalog import masked_artist_rows
from components.features import (
    DEFAULT_GROUPS,
    FEATURE_GROUPS,
    TrackFeaturizer,
    acoustic_electronic_spectrum,
    energy_dance_ratio,
    genre_multi_hot,
    popularity_balanced_weights,
)
from components.schema import MODEL_INPUT_COLUMNS, model_inputs
from tests.builders import synthetic_tracks
from tests.conftest import repo_params

LIGHTGBM = repo_params().ablation.lightgbm
NAMES = repo_params().train.names.settings()


def test_pure_feature_functions() -> None:
    energy = pd.Series([0.9, 0.1])
    assert energy_dance_ratio(energy, pd.Series([0.3, 0.9])).round(3).tolist() == [2.990, 0.111]
    assert acoustic_electronic_spectrum(pd.Series([0.0, 1.0]), energy).tolist() == pytest.approx([-0.9, 0.9])
    hot = genre_multi_hot(pd.Series(["pop|rock", "jazz", "unknown"]), ["jazz", "pop", "rock"])
    assert hot.to_numpy().tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    # Missing, empty and repeated genres, on an index that is not 0..n-1: 0/1 only, rows kept in place.
    labels = pd.Series([None, "rock|rock", "", "jazz|pop"], index=[7, 3, 3, 10])
    hot = genre_multi_hot(labels, ["jazz", "pop", "rock"])
    assert hot.index.tolist() == [7, 3, 3, 10]
    assert hot.columns.tolist() == ["genre__jazz", "genre__pop", "genre__rock"]
    assert hot.to_numpy().tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]]


def test_balanced_weights_favour_rare_bands() -> None:
    y = np.array([5] * 90 + [95] * 10)
    weights = popularity_balanced_weights(y)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[-1] > weights[0] * 8


def test_index_column_can_never_reach_a_model() -> None:
    tracks = synthetic_tracks()
    # A column that encodes the label perfectly, under the names the upstream index column takes.
    poisoned = tracks.assign(**{"": tracks["popularity"], "Unnamed: 0": tracks["popularity"]})
    featurizer = TrackFeaturizer(groups=FEATURE_GROUPS, names=NAMES)
    features = featurizer.fit_transform(poisoned, poisoned["popularity"])
    assert not {"", "Unnamed: 0", "popularity"} & set(features.columns)
    # The poisoned columns change nothing: same features with or without them.
    assert np.allclose(featurizer.transform(poisoned).to_numpy(), featurizer.transform(tracks).to_numpy())
    model = fit_baseline(poisoned, LIGHTGBM.model_copy(update={"n_estimators": 20}), 1, DEFAULT_GROUPS)
    assert list(model_inputs(poisoned).columns) == list(MODEL_INPUT_COLUMNS)
    assert "" not in model.named_steps["model"].feature_name_


def test_target_encoding_carries_no_signal_when_target_is_shuffled() -> None:
    tracks = synthetic_tracks(4000, seed=1)
    shuffled = np.random.default_rng(5).permutation(tracks["popularity"].to_numpy())
    featurizer = TrackFeaturizer(groups=("artist_target", "album_target"), seed=3)
    encoded = featurizer.fit_transform(tracks, shuffled)
    # Cross-fitted: a row's own (shuffled) target is never part of its encoding, so no correlation remains.
    for column in ("artist_target", "album_target"):
        corr = np.corrcoef(encoded[column], shuffled)[0, 1]
        assert abs(corr) < 0.06, (column, corr)
    # The same encoder fitted in-sample (what leaky notebooks do) does correlate: the test can fail.
    in_sample = tracks.assign(y=shuffled).groupby("album_name")["y"].transform("mean")
    assert np.corrcoef(in_sample, shuffled)[0, 1] > 0.3


def test_features_are_deterministic_for_a_seed() -> None:
    tracks = synthetic_tracks()
    y = tracks["popularity"]
    a = TrackFeaturizer(groups=FEATURE_GROUPS, seed=11, names=NAMES).fit_transform(tracks, y)
    b = TrackFeaturizer(groups=FEATURE_GROUPS, seed=11, names=NAMES).fit_transform(tracks, y)
    pd.testing.assert_frame_equal(a, b)


def test_genre_aware_imputation_uses_the_genre_median() -> None:
    tracks = synthetic_tracks()
    featurizer = TrackFeaturizer(groups=("audio",)).fit(tracks, tracks["popularity"])
    missing = tracks.head(4).copy()
    missing["energy"] = np.nan
    imputed = featurizer.transform(missing)["energy"]
    expected = tracks.groupby("track_genre")["energy"].median().reindex(missing["track_genre"]).to_numpy()
    assert np.allclose(imputed.to_numpy(), expected)
    assert missing["energy"].isna().all()  # input not mutated


def test_unknown_feature_group_is_named() -> None:
    tracks = synthetic_tracks(100)
    with pytest.raises(ValueError, match="sparkle"):
        TrackFeaturizer(groups=("audio", "sparkle")).fit(tracks, tracks["popularity"])


def test_genre_prediction_is_right_when_in_the_set() -> None:
    from components.evaluation import set_accuracy_at_k

    truth = [{"pop", "dance"}, {"rock"}, {"jazz"}]
    ranked = [["dance", "pop"], ["metal", "rock"], ["pop", "blues"]]
    assert set_accuracy_at_k(truth, ranked, k=1) == pytest.approx(1 / 3)
    assert set_accuracy_at_k(truth, ranked, k=2) == pytest.approx(2 / 3)


def test_catalog_counts_are_those_a_scored_track_sees() -> None:
    tracks = pd.DataFrame(
        {
            **{c: synthetic_tracks(6)[c] for c in MODEL_INPUT_COLUMNS if c not in ("artists", "album_name")},
            "artists": ["A;B", "A", "C", "C;D;E", "F", None],
            "album_name": ["Hits", "hits ", "Hits", "Solo", "Solo", None],
            "popularity": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        }
    )
    featurizer = TrackFeaturizer(groups=("catalog", "artist_frequency"), seed=0)
    train = featurizer.fit_transform(tracks, tracks["popularity"])
    assert train["credited_artists"].tolist() == [2, 1, 1, 3, 1, 0]
    # The album's *other* tracks in the catalog (a scored track is not in it), case-folded.
    assert train["album_catalog_tracks"].tolist() == [2, 2, 2, 1, 1, 0]
    assert train["artist_frequency"].tolist() == [1, 1, 1, 1, 0, 0]
    # A new track of a known album sees all of its catalog tracks.
    new = featurizer.transform(tracks.head(1).assign(album_name="HITS", artists="Z"))
    assert new[["album_catalog_tracks", "artist_frequency", "credited_artists"]].iloc[0].tolist() == [3, 0, 1]
    # Every artist masked: its rows see the catalog as a new artist's would (nothing of their own artist).
    masked = TrackFeaturizer(groups=("catalog", "artist_frequency"), seed=0, artist_mask_share=0.999)
    seen_as_new = masked.fit_transform(tracks, tracks["popularity"])
    assert seen_as_new["album_catalog_tracks"].tolist() == [1, 1, 2, 1, 1, 0]
    assert seen_as_new["artist_frequency"].tolist() == [0] * 6


def test_a_tracks_other_genre_rows_are_not_other_tracks() -> None:
    # The genre task trains on one row per (track, genre): a track listed under three genres is still one
    # track of its artist and album, or the counts would hand it the size of its label set.
    tracks = synthetic_tracks(4, seed=1).assign(artists="A", album_name="Hits")
    pairs = pd.concat([tracks.iloc[[0, 0, 0]], tracks.iloc[[1]]], ignore_index=True)
    features = TrackFeaturizer(groups=("catalog", "artist_frequency")).fit_transform(
        pairs, pairs["popularity"]
    )
    assert features["artist_frequency"].tolist() == [1, 1, 1, 1]
    assert features["album_catalog_tracks"].tolist() == [1, 1, 1, 1]


def test_masked_artists_get_the_unseen_artist_prior() -> None:
    tracks = synthetic_tracks(2000, seed=4)
    y = tracks["popularity"]
    featurizer = TrackFeaturizer(groups=("artist_target",), seed=2, artist_mask_share=0.3)
    encoded = featurizer.fit_transform(tracks, y)["artist_target"].to_numpy()
    prior = featurizer.target_encoder_.target_mean_
    masked = masked_artist_rows(tracks.reset_index(drop=True)["artists"], share=0.3, seed=2)
    assert 0.2 < masked.mean() < 0.4
    assert np.allclose(encoded[masked], prior)
    assert not np.isclose(encoded[~masked], prior).all()
    # The same share and seed mask the same artists: the encoding is reproducible.
    again = TrackFeaturizer(groups=("artist_target",), seed=2, artist_mask_share=0.3).fit_transform(tracks, y)
    assert np.array_equal(again["artist_target"].to_numpy(), encoded)
