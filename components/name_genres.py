"""The names group for the genre task: a naive Bayes classifier of the genre from the track, album and artist
names' hashed character n-grams, pooled with a genre model's probabilities.

Fed as features, one output per genre would add 114 columns to every genre model. Pooled instead
(log p = log p_model + w x log p_names, renormalised), the names act as a second opinion: on the artist
holdout of the real data, a multinomial naive Bayes on 2^14 hashed n-grams alone reaches top-1 set accuracy
0.26, an untuned LightGBM on the other groups 0.22, and their product 0.37. The weight w of each model is
fitted on out-of-fold outputs of the training rows (trackflow/stages/train.py), never on the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from components.names import (
    NAME_COLUMNS,
    NameCharacters,
    NameModelSettings,
    NgramOccurrences,
    hashed_ngrams,
    name_texts,
)
from components.tuning import grouped_folds

# Candidate pooling weights: 0 turns the names off, 1 is the plain product of the two opinions.
POOL_WEIGHTS = tuple(np.round(np.arange(0.0, 2.01, 0.1), 2))
_FLOOR = 1e-12


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class NameGenreClassifier:
    """Multinomial naive Bayes on idf-weighted, length-normalised hashed n-gram counts (the names group's
    scaling, components/names.py). The per-genre log-probabilities are stored in float16 (2^14 x 114 of
    them ride in every genre model) and widened once per process."""

    def __init__(self, settings: NameModelSettings) -> None:
        self.settings = settings

    def _scaled(self, occurrences: NgramOccurrences, idf: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
        n = occurrences.n_rows
        weight = idf[occurrences.columns]
        squared = np.bincount(occurrences.rows, weights=weight**2, minlength=n)
        length = np.sqrt(squared)
        data = (weight / np.where(length > 0, length, 1.0)[occurrences.rows]).astype("float32")
        # CSR by a stable sort on the rows, repeats left in (a product sums them): building it from
        # (row, column) pairs would sort and merge the duplicates, about three times as slow.
        order = np.argsort(occurrences.rows, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(occurrences.rows, minlength=n))])
        matrix = sparse.csr_matrix(
            (data[order], occurrences.columns[order], indptr), shape=(n, self.settings.n_features)
        )
        return matrix, squared > 0

    def fit(self, texts: list[str], y: np.ndarray, n_classes: int) -> NameGenreClassifier:
        characters = NameCharacters.of(texts)
        occurrences = hashed_ngrams(characters, self.settings)
        rows_with = np.bincount(
            np.unique(occurrences.rows * self.settings.n_features + occurrences.columns)
            % self.settings.n_features,
            minlength=self.settings.n_features,
        )
        idf = np.log((1 + len(texts)) / (1 + rows_with)) + 1.0
        matrix, _ = self._scaled(occurrences, idf)
        y = np.asarray(y, dtype=np.int64)
        onehot = sparse.csr_matrix((np.ones(len(y)), (np.arange(len(y)), y)), shape=(len(y), n_classes))
        counts = np.asarray((matrix.T @ onehot).todense(), dtype="float64") + self.settings.alpha
        log_prob = np.log(counts) - np.log(counts.sum(axis=0, keepdims=True))
        self.log_prob_ = np.ascontiguousarray(log_prob, dtype="float16")
        # Add-one on the genre counts: a genre without training rows keeps a finite prior.
        self.log_prior_ = np.log((np.bincount(y, minlength=n_classes) + 1.0) / (len(y) + n_classes))
        self.idf_ = idf.astype("float32")
        return self

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_widened"}

    def log_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the genres' log-probabilities given its names, and whether the row has any name (a row
        without one gets zeros: no opinion)."""
        return self.log_proba_of(hashed_ngrams(NameCharacters.of(texts), self.settings))

    def log_proba_of(self, occurrences: NgramOccurrences) -> tuple[np.ndarray, np.ndarray]:
        """`log_proba` of the rows' hashed n-grams (at this classifier's column count)."""
        widened = self.__dict__.get("_widened")
        if widened is None:
            # C order: scipy's sparse product flattens the dense side, which copies a Fortran-ordered one
            # (7.5 MB, 3 ms) on every call.
            widened = self._widened = np.ascontiguousarray(self.log_prob_, dtype="float32")
        matrix, has_text = self._scaled(occurrences, self.idf_)
        scores = _log_softmax(np.asarray(matrix @ widened) + self.log_prior_.astype("float32"))
        scores[~has_text] = 0.0
        return scores, has_text


def texts_of(inputs: Mapping[str, np.ndarray]) -> list[str]:
    """The name texts of model input columns (a frame, or InputArrays)."""
    return name_texts(*(np.asarray(inputs[c]) for c in NAME_COLUMNS))


@dataclass
class NamePrior:
    """A genre model's second opinion from the names: its probabilities pooled with the classifier's, with
    this weight (0: the names change nothing)."""

    classifier: NameGenreClassifier
    weight: float
    source: str = field(default="")

    def pool(
        self,
        proba: np.ndarray,
        inputs: Mapping[str, np.ndarray],
        shared: dict[tuple[object, ...], object] | None = None,
    ) -> np.ndarray:
        """Pooled class probabilities; rows without any name keep the model's own. `shared`: the batch's
        store of name characters and n-grams (components/features.py `_name_block`), reused when there."""
        if self.weight == 0:
            return proba
        names, has_text = self.classifier.log_proba_of(_ngrams(inputs, self.classifier.settings, shared))
        return pool(proba, names, has_text, self.weight)


def _ngrams(
    inputs: Mapping[str, np.ndarray],
    settings: NameModelSettings,
    shared: dict[tuple[object, ...], object] | None,
) -> NgramOccurrences:
    """The rows' n-grams hashed into `settings.n_features` columns. Hashing into 2^k columns keeps the low k
    bits of the hash, so n-grams a featurizer of the batch hashed into more columns (the names group's
    2^18) are reused with their columns masked."""
    shared = {} if shared is None else shared
    own = ("name_ngrams", settings.n_features, settings.ngram_min, settings.ngram_max)
    if own not in shared:
        wider = [
            key
            for key in shared
            if key[0] == "name_ngrams"
            and key[1] >= settings.n_features  # type: ignore[operator]
            and key[2:] == own[2:]
        ]
        if wider:
            found: NgramOccurrences = shared[wider[0]]  # type: ignore[assignment]
            masked = found.columns & (settings.n_features - 1)
            shared[own] = NgramOccurrences(found.rows, masked, found.n_rows)
        else:
            if ("name_characters",) not in shared:
                shared[("name_characters",)] = NameCharacters.of(texts_of(inputs))
            shared[own] = hashed_ngrams(shared[("name_characters",)], settings)  # type: ignore[arg-type]
    return shared[own]  # type: ignore[return-value]


def pool(proba: np.ndarray, names: np.ndarray, has_text: np.ndarray, weight: float) -> np.ndarray:
    """softmax(log p + weight x names) on the rows with a name, the others as they are."""
    out = np.array(proba, dtype="float64")
    if has_text.any():
        logs = np.log(np.clip(out[has_text], _FLOOR, 1.0)) + weight * names[has_text]
        out[has_text] = np.exp(_log_softmax(logs))
    return out


def out_of_fold_names(
    texts: list[str],
    y: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    settings: NameModelSettings,
    folds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's out-of-fold log-probabilities on training rows (folds grouped as `grouped_folds`
    groups them), and which rows have a name."""
    out = np.zeros((len(texts), n_classes))
    has_text = np.zeros(len(texts), dtype=bool)
    for fold_train, fold_valid in grouped_folds(groups, folds, seed):
        model = NameGenreClassifier(settings).fit([texts[i] for i in fold_train], y[fold_train], n_classes)
        out[fold_valid], has_text[fold_valid] = model.log_proba([texts[i] for i in fold_valid])
    return out, has_text


def fit_pool_weight(proba: np.ndarray, names: np.ndarray, has_text: np.ndarray, y: np.ndarray) -> float:
    """The weight of POOL_WEIGHTS with the least log-loss of the pooled out-of-fold probabilities."""
    y = np.asarray(y, dtype=np.int64)
    losses = []
    for weight in POOL_WEIGHTS:
        pooled = pool(proba, names, has_text, float(weight))
        losses.append(-np.mean(np.log(np.clip(pooled[np.arange(len(y)), y], _FLOOR, 1.0))))
    return float(POOL_WEIGHTS[int(np.argmin(losses))])
