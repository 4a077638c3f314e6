"""The genre task's names opinion: a naive Bayes on hashed n-grams that learns genres from words in the
names, pooled with a model's probabilities by a weight fitted on out-of-fold outputs (0 when the names say
nothing), and no opinion for a row without a name."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from components.name_genres import (
    NameGenreClassifier,
    NamePrior,
    fit_pool_weight,
    out_of_fold_names,
    pool,
)
from components.names import NameModelSettings

SETTINGS = NameModelSettings(n_features=2**12, ngram_min=2, ngram_max=4, alpha=0.05, folds=3)
WORDS = {0: ["samba", "bossa", "carnaval"], 1: ["metal", "doom", "riff"], 2: ["piano", "sonata", "etude"]}


def _names(n: int, seed: int, informative: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts whose words say the genre (or, not informative, are drawn regardless of it)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    source = y if informative else rng.integers(0, 3, n)
    texts = [f"{rng.choice(WORDS[int(g)])} {rng.integers(1000)} | artist {rng.integers(50)}" for g in source]
    groups = rng.integers(0, 40, n).astype(str)
    return texts, y, groups


def test_the_classifier_learns_genres_from_words_in_the_names() -> None:
    texts, y, _ = _names(600, seed=0)
    model = NameGenreClassifier(SETTINGS).fit(texts, y, 3)
    test_texts, test_y, _ = _names(300, seed=1)
    scores, has_text = model.log_proba(test_texts)
    assert has_text.all() and (scores.argmax(axis=1) == test_y).mean() > 0.95
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, rtol=1e-6)
    assert model.log_prob_.dtype == np.float16  # what rides in every genre model
    # A row without any name has no opinion: zeros, so pooling leaves the model's answer alone.
    empty, has = model.log_proba(["", "samba 1 | artist 2"])
    assert not has[0] and has[1] and (empty[0] == 0).all()
    proba = np.array([[0.2, 0.5, 0.3], [0.2, 0.5, 0.3]])
    pooled = NamePrior(model, 1.0).pool(
        proba,
        {
            "track_name": np.array([None, "samba"], dtype=object),
            "album_name": np.array([None, "x"], dtype=object),
            "artists": np.array([None, "y"], dtype=object),
        },
    )
    np.testing.assert_allclose(pooled[0], proba[0])
    assert pooled[1].argmax() == 0 and pooled[1].sum() == pytest.approx(1.0)
    # The widened copy is a per-process cache, not part of the pickle.
    assert "_widened" in model.__dict__ and "_widened" not in pickle.loads(pickle.dumps(model)).__dict__


@pytest.mark.parametrize("informative", [True, False])
def test_the_pooling_weight_follows_what_the_names_know(informative: bool) -> None:
    texts, y, groups = _names(900, seed=2, informative=informative)
    names, has_text = out_of_fold_names(texts, y, groups, 3, SETTINGS, folds=3, seed=0)
    # A weak model: right two times in five, its probabilities soft.
    rng = np.random.default_rng(3)
    guess = np.where(rng.uniform(size=len(y)) < 0.4, y, rng.integers(0, 3, len(y)))
    proba = np.full((len(y), 3), 0.25)
    proba[np.arange(len(y)), guess] = 0.5
    weight = fit_pool_weight(proba, names, has_text, y)
    if informative:
        assert weight >= 0.5
        before = (proba.argmax(axis=1) == y).mean()
        after = (pool(proba, names, has_text, weight).argmax(axis=1) == y).mean()
        assert after > before + 0.3
    else:
        assert weight <= 0.2  # noise is turned (almost) off


def test_the_prior_reuses_the_wider_ngrams_a_batch_already_hashed() -> None:
    from components.name_genres import texts_of
    from components.names import NameCharacters, hashed_ngrams

    texts, y, _ = _names(300, seed=5)
    model = NameGenreClassifier(SETTINGS).fit(texts, y, 3)
    inputs = {
        "track_name": np.array([t.split(" | ")[0] for t in texts], dtype=object),
        "album_name": np.array(["album"] * len(texts), dtype=object),
        "artists": np.array([t.split(" | ")[1] for t in texts], dtype=object),
    }
    wide = NameModelSettings(n_features=2**16, ngram_min=2, ngram_max=4, alpha=1.0, folds=2)
    shared: dict[tuple[object, ...], object] = {
        ("name_ngrams", 2**16, 2, 4): hashed_ngrams(NameCharacters.of(texts_of(inputs)), wide)
    }
    proba = np.full((len(texts), 3), 1 / 3)
    reused = NamePrior(model, 1.0).pool(proba, inputs, shared)
    np.testing.assert_allclose(reused, NamePrior(model, 1.0).pool(proba, inputs), rtol=1e-6)
    assert ("name_ngrams", SETTINGS.n_features, 2, 4) in shared and ("name_characters",) not in shared
