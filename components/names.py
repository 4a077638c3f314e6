"""Track, album and artist names as features: character n-grams turned into the out-of-fold output of a
linear model, and the scripts the names are written in.

A ridge regression on the names' character n-grams alone explains about 30% of popularity's variance on the
artist holdout, more than any audio column. Fed raw, 262,144 sparse columns would swamp a tree model, so the
featurizer learns a `NameModel`: its output is one column, cross-fitted on the training rows (each row scored
by a model fitted on folds grouped by primary artist, so a training row is encoded the way an unseen
artist's track is) and, for new rows, the model fitted on all training rows.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold

NAME_COLUMNS: tuple[str, ...] = ("track_name", "album_name", "artists")
NAME_OUTPUT = "names_linear"
# The scripts of the dataset's genres' markets, as code point ranges (sorted, not overlapping).
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)),
    "greek": ((0x370, 0x3FF),),
    "cyrillic": ((0x400, 0x4FF),),
    "hebrew": ((0x590, 0x5FF),),
    "arabic": ((0x600, 0x6FF),),
    "devanagari": ((0x900, 0x97F),),
    "thai": ((0xE00, 0xE7F),),
    "hangul": ((0x1100, 0x11FF), (0xAC00, 0xD7AF)),
    "kana": ((0x3040, 0x30FF),),
    "han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF)),
}
SCRIPT_COLUMNS: tuple[str, ...] = tuple(f"script__{s}" for s in SCRIPTS)
_RANGES = sorted((lo, hi, k) for k, ranges in enumerate(SCRIPTS.values()) for lo, hi in ranges)
_EDGES = np.array([edge for lo, hi, _ in _RANGES for edge in (lo, hi + 1)], dtype=np.int64)
_RANGE_SCRIPT = np.array([k for _, _, k in _RANGES], dtype=np.int64)


@dataclass(frozen=True)
class NameModelSettings:
    """The name model's hyperparameters (params.yaml `train.names`)."""

    n_features: int
    ngram_min: int
    ngram_max: int
    alpha: float
    folds: int


def name_texts(track_name: np.ndarray, album_name: np.ndarray, artists: np.ndarray) -> list[str]:
    """One lower-cased text per row, the three names joined; a missing name reads as empty. A row without
    any name (an audio file scored on its own) gives an empty text, which the model answers with the
    training rows' mean: an imputation rather than an error."""
    texts = []
    for parts in zip(track_name, album_name, artists, strict=True):
        names = [v.strip() if isinstance(v, str) else "" for v in parts]
        texts.append(" | ".join(names).lower() if any(names) else "")
    return texts


@dataclass(frozen=True)
class NameCharacters:
    """A batch's name texts as one array of code points, the texts one after the other, each padded with a
    space at either end (an empty text stays empty): what the n-grams and the scripts are read from."""

    codes: np.ndarray  # uint32 code points
    row_of: np.ndarray  # the row of each code point
    room: np.ndarray  # code points from each one to its row's end
    n_rows: int

    @classmethod
    def of(cls, texts: list[str]) -> NameCharacters:
        padded = [f" {t} " if t else "" for t in texts]
        lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
        # surrogatepass: a lone surrogate (valid JSON, "\ud800") is a code point like any other here.
        codes = np.frombuffer("".join(padded).encode("utf-32-le", errors="surrogatepass"), dtype="<u4")
        row_of = np.repeat(np.arange(len(padded)), lengths)
        room = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(codes))
        return cls(codes, row_of, room, len(texts))


def script_shares(characters: NameCharacters) -> np.ndarray:
    """Per row, the share of its script characters (those of any script in SCRIPTS) in each script; all 0
    for a row without any (digits and punctuation only, or no name)."""
    position = np.searchsorted(_EDGES, characters.codes, side="right") - 1
    inside = (position >= 0) & (position % 2 == 0)
    script = _RANGE_SCRIPT[position[inside] // 2]
    n_scripts = len(SCRIPTS)
    counts = np.bincount(
        characters.row_of[inside] * n_scripts + script, minlength=characters.n_rows * n_scripts
    ).reshape(characters.n_rows, n_scripts)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


_FNV_PRIME = np.uint32(16777619)
_FNV_OFFSET = np.uint32(2166136261)


@dataclass(frozen=True)
class NgramOccurrences:
    """Every character n-gram occurrence of a batch of texts: its row and its hashed column. Repeats stay
    separate entries, so that a model reads them with a gather and a bincount, without grouping."""

    rows: np.ndarray
    columns: np.ndarray  # < n_features
    n_rows: int

    def take(self, positions: np.ndarray) -> NgramOccurrences:
        """The occurrences of the rows at `positions` (distinct), renumbered 0..len(positions)-1."""
        new_row = np.full(self.n_rows, -1, dtype=np.int64)
        new_row[positions] = np.arange(len(positions))
        kept = new_row[self.rows] >= 0
        return NgramOccurrences(new_row[self.rows[kept]], self.columns[kept], len(positions))

    def counts(self, n_features: int) -> sparse.csr_matrix:
        """The rows' n-gram counts as a sparse matrix (duplicates summed)."""
        data = np.ones(len(self.rows), dtype="float64")
        matrix = sparse.csr_matrix((data, (self.rows, self.columns)), shape=(self.n_rows, n_features))
        matrix.sum_duplicates()
        return matrix


def hashed_ngrams(characters: NameCharacters, settings: NameModelSettings) -> NgramOccurrences:
    """The character n-grams (ngram_min..ngram_max) of a batch's texts, hashed (32-bit FNV-1a, the
    n-gram's length mixed in) into `n_features` columns (a power of two).

    In numpy over the batch's concatenated code points: each n-gram length extends the hashes of the one
    before by a character, so the whole batch costs a few array passes. scikit-learn's HashingVectorizer
    builds its n-grams in Python, about 10 times slower, which would dominate batch scoring."""
    codes, mask = characters.codes, np.uint32(settings.n_features - 1)
    hashes = (_FNV_OFFSET ^ codes) * _FNV_PRIME
    rows, columns = [], []
    for n in range(1, settings.ngram_max + 1):
        if n > 1:
            hashes = (hashes[:-1] ^ codes[n - 1 :]) * _FNV_PRIME  # hashes[i]: the n-gram starting at i
        if n < settings.ngram_min:
            continue
        starts = np.flatnonzero(characters.room[: len(hashes)] >= n)
        mixed = hashes[starts] ^ np.uint32((n * 0x9E3779B1) & 0xFFFFFFFF)
        mixed ^= mixed >> np.uint32(15)
        rows.append(characters.row_of[starts])
        columns.append((mixed & mask).astype(np.intp))
    return NgramOccurrences(np.concatenate(rows), np.concatenate(columns), characters.n_rows)


class NameModel:
    """Hashed character n-gram counts weighted by idf (learned on the training rows), each row scaled to
    unit length, and a ridge regression on them.

    The row's length is sqrt(sum of count x idf^2) rather than the Euclidean sqrt(sum of (count x idf)^2):
    the same for n-grams that occur once, and computable from the occurrences without grouping them, so
    that predicting a batch is two gathers and two bincounts. Only the idf and the coefficients are kept."""

    def __init__(self, settings: NameModelSettings) -> None:
        self.settings = settings

    def _scaled(self, counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        squared_length = np.bincount(
            rows, weights=counts.data * idf[counts.indices] ** 2, minlength=counts.shape[0]
        )
        lengths = np.sqrt(squared_length)
        data = counts.data * idf[counts.indices] / lengths[rows]
        return sparse.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)

    def fit(self, occurrences: NgramOccurrences, y: np.ndarray) -> NameModel:
        counts = occurrences.counts(self.settings.n_features)
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0
        ridge = Ridge(alpha=self.settings.alpha, solver="sparse_cg").fit(self._scaled(counts, idf), y)
        # float32: a fitted featurizer carries 2 x n_features of these into every logged model.
        self.weight_ = (idf * ridge.coef_).astype("float32")
        self.idf_squared_ = (idf**2).astype("float32")
        self.intercept_ = float(ridge.intercept_)
        # What a row without any n-gram (no name at all) gets: the training rows' mean, an imputation.
        self.mean_ = float(np.mean(y))
        # Equal fits (a blend's members, fitted on the same rows) answer a batch once (features.py).
        self.digest_ = hashlib.sha256(
            self.weight_.tobytes()
            + self.idf_squared_.tobytes()
            + repr((self.intercept_, self.mean_)).encode()
        ).hexdigest()
        return self

    def predict(self, occurrences: NgramOccurrences) -> np.ndarray:
        """Per row, the ridge's output; the training rows' mean for a row without n-grams (no name)."""
        n = occurrences.n_rows
        dots = np.bincount(occurrences.rows, weights=self.weight_[occurrences.columns], minlength=n)
        squared = np.bincount(occurrences.rows, weights=self.idf_squared_[occurrences.columns], minlength=n)
        scaled = np.divide(dots, np.sqrt(squared), out=np.zeros(n), where=squared > 0)
        return np.where(squared > 0, scaled + self.intercept_, self.mean_)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        return self.predict(hashed_ngrams(NameCharacters.of(texts), self.settings))


@dataclass(frozen=True)
class NameFit:
    """A fitted name model and its out-of-fold outputs on the rows it was fitted on."""

    model: NameModel
    out_of_fold: np.ndarray


def _fit(texts: list[str], y: np.ndarray, groups: np.ndarray, settings: NameModelSettings) -> NameFit:
    occurrences = hashed_ngrams(NameCharacters.of(texts), settings)
    out_of_fold = np.empty(len(texts), dtype="float64")
    n_splits = min(settings.folds, len(np.unique(groups)))
    if n_splits < 2:
        raise ValueError("the names feature group needs training rows of at least two primary artists")
    # Grouped by primary artist: a training row is scored by a model that never saw its artist, as a
    # held-out artist's track is.
    for fit_rows, scored_rows in GroupKFold(n_splits=n_splits).split(np.zeros(len(texts)), y, groups):
        fold = NameModel(settings).fit(occurrences.take(fit_rows), y[fit_rows])
        out_of_fold[scored_rows] = fold.predict(occurrences.take(scored_rows))
    return NameFit(NameModel(settings).fit(occurrences, y), out_of_fold)


class _FitMemo:
    """Fitted name models by their inputs' digest. Training fits one featurizer per family, CV fold, refit
    and fallback on the very same rows (about 60 per task); the name model depends on the rows, the target
    and the settings only, so each distinct fit is computed once per process. Thread-safe: families tune in
    a thread pool, and a second thread asking for a fit under way waits for it."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._fits: OrderedDict[str, NameFit] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Lock] = {}

    def get(
        self, texts: list[str], y: np.ndarray, groups: np.ndarray, settings: NameModelSettings
    ) -> NameFit:
        digest = hashlib.sha256()
        for part in (repr(settings), "\x00".join(texts), "\x00".join(map(str, groups))):
            digest.update(part.encode())
        digest.update(np.ascontiguousarray(y, dtype="float64").tobytes())
        key = digest.hexdigest()
        with self._lock:
            if key in self._fits:
                self._fits.move_to_end(key)
                return self._fits[key]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._fits:
                    return self._fits[key]
            try:
                fitted = _fit(texts, y, groups, settings)
            except BaseException:
                with self._lock:
                    self._pending.pop(key, None)
                raise
            with self._lock:
                self._fits[key] = fitted
                self._pending.pop(key, None)
                while len(self._fits) > self._size:
                    self._fits.popitem(last=False)
        return fitted


_MEMO = _FitMemo()


def fit_name_model(
    texts: list[str], y: np.ndarray, groups: np.ndarray, settings: NameModelSettings
) -> NameFit:
    """The name model of these training rows (`groups`: each row's primary artist) and its out-of-fold
    outputs, computed once per process for the same inputs."""
    y = np.asarray(y, dtype="float64")
    if y.ndim != 1:
        raise ValueError(f"the names feature group needs a one-column target, got shape {y.shape}")
    return _MEMO.get(texts, y, np.asarray(groups), settings)
