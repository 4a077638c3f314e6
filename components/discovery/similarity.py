"""Similar tracks: exact nearest neighbours in the standardised audio space, optionally genre-weighted.

Exact search is cheap at this size: one query against 90k tracks is one 90k x 10 matrix product (about a
millisecond), so no approximate index is needed. Neighbour lists never contain the query itself nor its
copies, and hold each song once: copies are the same song (same name and artists) released under other
track_ids, and the same master under another name (same primary artist, identical audio values).

Genre weighting adds `genre_weight**2 * |g_q - g_c|**2` to the squared audio distance, where g is the track's
genre multi-hot scaled to unit length: 0 for the same genre set, 2 for disjoint ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from components.discovery.space import (
    REQUIRED_COLUMNS,
    SPACE_FEATURES,
    AudioSpace,
    DiscoveryInputError,
    artist_sets,
    audio_fingerprint,
    copy_groups,
    genre_sets,
    song_key,
    split_set,
)
from components.schema import AUDIO_FEATURES, GENRE_SEPARATOR

CATALOG_META = ("track_id", "track_name", "artists", "album_name", "track_genre", "popularity")
RESULT_COLUMNS = ("query", "rank", "track_id", "track_name", "artists", "track_genre", "distance")


def genre_matrix(sets: Sequence[frozenset[str]], vocabulary: Sequence[str]) -> sparse.csr_matrix:
    """Rows: a track's genres in `vocabulary`, scaled to unit length (all zero when none is known)."""
    position = {g: j for j, g in enumerate(vocabulary)}
    rows, cols, vals = [], [], []
    for i, genres in enumerate(sets):
        known = [position[g] for g in genres if g in position]
        for j in known:
            rows.append(i)
            cols.append(j)
            vals.append(1.0 / np.sqrt(len(known)))
    return sparse.csr_matrix(
        (np.asarray(vals, "float32"), (rows, cols)), shape=(len(sets), len(vocabulary)), dtype="float32"
    )


def _first_group(keys: pd.Series, groups: np.ndarray) -> pd.Series:
    """key -> copy group of its first row (rows without a key are left out)."""
    table = pd.DataFrame({"key": keys.astype(object).to_numpy(), "group": groups}).dropna(subset=["key"])
    return table.drop_duplicates("key").set_index("key")["group"]


class SimilarityIndex(BaseEstimator):
    """`fit(train_rows)` fits the space and the genre vocabulary; `build(catalog_rows)` indexes the tracks to
    search; `query(rows, k)` returns neighbours of arbitrary raw rows, `similar_to(ids, k)` of catalogue
    tracks."""

    def __init__(self, features: Sequence[str] = SPACE_FEATURES, genre_weight: float = 0.0, chunk: int = 256):
        self.features = features
        self.genre_weight = genre_weight
        self.chunk = chunk

    def fit(self, X: pd.DataFrame, y: object = None) -> SimilarityIndex:
        self.space_ = AudioSpace(self.features).fit(X)
        self.vocabulary_ = sorted({g for s in genre_sets(X) for g in s})
        return self

    def build(self, catalog: pd.DataFrame) -> SimilarityIndex:
        check_is_fitted(self, "space_")
        if catalog.empty:
            raise DiscoveryInputError("the catalogue to index is empty")
        require = (*REQUIRED_COLUMNS, "track_id", "track_name", "artists")
        missing = [c for c in require if c not in catalog.columns]
        if missing:
            raise DiscoveryInputError(f"catalogue rows are missing columns {missing}")
        if catalog["track_id"].duplicated().any():
            raise DiscoveryInputError("catalogue track_ids must be unique (use the per-track table)")
        rows = catalog.reset_index(drop=True)
        raw = self.space_.featurizer_.transform(rows)
        meta = rows[[c for c in CATALOG_META if c in rows.columns]]
        if "track_genre" not in meta.columns:
            meta = meta.assign(track_genre="")
        self.catalog_ = pd.concat(
            [meta, raw[[c for c in raw.columns if c not in meta.columns]], rows[["duration_ms"]]], axis=1
        )
        self.vectors_ = self.space_.transform(rows).astype("float32")
        self.sq_norms_ = np.einsum("ij,ij->i", self.vectors_, self.vectors_)
        self.genres_ = genre_matrix(genre_sets(rows), self.vocabulary_)
        self.genre_sq_norms_ = np.asarray(self.genres_.multiply(self.genres_).sum(axis=1)).ravel()
        self._meta = {c: self.catalog_[c].astype(object).to_numpy() for c in RESULT_COLUMNS[2:-1]}
        # Copies: one group per song (same name and artists, or the same master under another name).
        codes = copy_groups(rows)
        self.song_codes_ = codes
        self.song_order_ = np.argsort(codes, kind="stable")
        self.song_starts_ = np.searchsorted(codes[self.song_order_], np.arange(int(codes.max()) + 2))
        self.song_key_groups_ = _first_group(song_key(rows), codes)
        self.fingerprint_groups_ = _first_group(audio_fingerprint(rows), codes)
        self.id_position_ = pd.Index(rows["track_id"].astype(str))
        return self

    # Derived from the catalogue on first use and never pickled: the CLI loads the index faster without
    # 180k Python sets, and only the evaluation needs them.
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_sets", None)
        return state

    def _cached_sets(self) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        if getattr(self, "_sets", None) is None:
            self._sets = (genre_sets(self.catalog_), artist_sets(self.catalog_))
        return self._sets

    @property
    def genre_sets_(self) -> list[frozenset[str]]:
        return self._cached_sets()[0]

    @property
    def artist_sets_(self) -> list[frozenset[str]]:
        return self._cached_sets()[1]

    # --- lookups ---
    def positions(self, track_ids: Sequence[str]) -> np.ndarray:
        check_is_fitted(self, "vectors_")
        found = self.id_position_.get_indexer([str(t) for t in track_ids])
        unknown = [t for t, p in zip(track_ids, found, strict=True) if p < 0]
        if unknown:
            raise DiscoveryInputError(f"track ids not in the catalogue: {unknown[:5]}")
        return found

    def copies_of_code(self, code: int) -> np.ndarray:
        if code < 0:
            return np.empty(0, dtype="int64")
        return self.song_order_[self.song_starts_[code] : self.song_starts_[code + 1]]

    def excluded_positions(self, rows: pd.DataFrame) -> list[np.ndarray]:
        """Per query row: the catalogue positions of the same track_id and of every copy of its song."""
        n = len(rows)
        by_id = (
            self.id_position_.get_indexer(rows["track_id"].astype(str))
            if "track_id" in rows.columns
            else np.full(n, -1)
        )
        by_name = np.full(n, -1)
        if {"track_name", "artists"} <= set(rows.columns):
            by_name = self.song_key_groups_.reindex(song_key(rows)).fillna(-1).to_numpy("int64")
        by_audio = np.full(n, -1)
        if {*AUDIO_FEATURES, "duration_ms", "artists"} <= set(rows.columns):
            prints = audio_fingerprint(rows).astype(object).where(lambda v: v.notna(), None)
            by_audio = self.fingerprint_groups_.reindex(prints).fillna(-1).to_numpy("int64")
        out = []
        for position, name_group, audio_group in zip(by_id, by_name, by_audio, strict=True):
            groups = {int(name_group), int(audio_group)}
            if position >= 0:
                groups.add(int(self.song_codes_[position]))
            parts = [np.asarray([position] if position >= 0 else [], dtype="int64")]
            parts += [self.copies_of_code(g) for g in groups if g >= 0]
            out.append(np.unique(np.concatenate(parts)).astype("int64"))
        return out

    # --- search ---
    def search_vectors(
        self,
        vectors: np.ndarray,
        genres: sparse.csr_matrix,
        excluded: Sequence[np.ndarray],
        k: int,
        genre_weight: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest catalogue positions of space vectors (with their genre rows), never `excluded`."""
        n_catalog = len(self.vectors_)
        if not 1 <= k <= n_catalog - 1:
            raise DiscoveryInputError(f"k must be between 1 and {n_catalog - 1}, got {k}")
        positions = np.empty((len(vectors), k), dtype="int64")
        distances = np.empty((len(vectors), k), dtype="float64")
        for start in range(0, len(vectors), self.chunk):
            q = vectors[start : start + self.chunk].astype("float32")
            d2 = np.einsum("ij,ij->i", q, q)[:, None] + self.sq_norms_[None, :] - 2.0 * (q @ self.vectors_.T)
            if genre_weight:
                g = genres[start : start + self.chunk]
                dot = np.asarray((self.genres_ @ g.T).T.todense())
                g_sq = np.asarray(g.multiply(g).sum(axis=1)).ravel()
                d2 += genre_weight**2 * (g_sq[:, None] + self.genre_sq_norms_[None, :] - 2.0 * dot)
            np.maximum(d2, 0.0, out=d2)
            for row in range(len(q)):
                d2[row, excluded[start + row]] = np.inf
                found, gaps = self._distinct_songs(d2[row], k)
                positions[start + row], distances[start + row] = found, np.sqrt(gaps)
        if not np.isfinite(distances).all():
            raise DiscoveryInputError(f"fewer than k={k} distinct songs remain once copies are excluded")
        return positions, distances

    def _distinct_songs(self, d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest positions of distinct songs (the nearest copy of each): candidates by partial sort,
        widened until k distinct songs are among them."""
        pool = min(len(d2), 2 * k + 8)
        while True:
            candidates = np.argpartition(d2, pool - 1)[:pool] if pool < len(d2) else np.arange(len(d2))
            candidates = candidates[np.argsort(d2[candidates], kind="stable")]
            _, first = np.unique(self.song_codes_[candidates], return_index=True)
            chosen = candidates[np.sort(first)][:k]
            if len(chosen) == k or pool >= len(d2):
                break
            pool = min(len(d2), pool * 4)
        gaps = d2[chosen]
        if len(chosen) < k:  # the catalogue has fewer than k distinct songs: padded as infinite (an error)
            chosen = np.r_[chosen, np.zeros(k - len(chosen), dtype="int64")]
            gaps = np.r_[gaps, np.full(k - len(gaps), np.inf)]
        return chosen, gaps

    def neighbour_positions(
        self, rows: pd.DataFrame, k: int, genre_weight: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions, distances), each (len(rows), k), nearest first, copies excluded."""
        check_is_fitted(self, "vectors_")
        weight = self.genre_weight if genre_weight is None else float(genre_weight)
        vectors = self.space_.transform(rows)
        genres = genre_matrix(genre_sets(rows), self.vocabulary_)
        return self.search_vectors(vectors, genres, self.excluded_positions(rows), k, weight)

    def catalogue_neighbours(
        self, positions: np.ndarray, k: int, genre_weight: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of catalogue tracks by position (no re-featurising: the evaluation's fast path)."""
        check_is_fitted(self, "vectors_")
        weight = self.genre_weight if genre_weight is None else float(genre_weight)
        positions = np.asarray(positions)
        excluded = [
            np.unique(np.r_[p, self.copies_of_code(int(self.song_codes_[p]))]).astype("int64")
            for p in positions
        ]
        return self.search_vectors(self.vectors_[positions], self.genres_[positions], excluded, k, weight)

    def _table(self, positions: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
        n, k = positions.shape
        flat = positions.ravel()
        columns = {"query": np.repeat(np.arange(n), k), "rank": np.tile(np.arange(1, k + 1), n)}
        columns.update({c: values[flat] for c, values in self._meta.items()})
        columns["distance"] = distances.ravel()
        return pd.DataFrame(columns)[list(RESULT_COLUMNS)]

    def query(self, rows: pd.DataFrame, k: int = 10, genre_weight: float | None = None) -> pd.DataFrame:
        """Long table: `query` (row position in `rows`), `rank`, the neighbour's id, name, artists, genres and
        `distance`."""
        positions, distances = self.neighbour_positions(rows, k, genre_weight)
        return self._table(positions, distances)

    def similar_to(
        self, track_ids: Sequence[str], k: int = 10, genre_weight: float | None = None
    ) -> pd.DataFrame:
        positions, distances = self.catalogue_neighbours(self.positions(track_ids), k, genre_weight)
        return self._table(positions, distances)

    # --- evaluation ---
    def agreement(self, query_positions: np.ndarray, neighbours: np.ndarray) -> dict[str, float]:
        """Share of neighbours sharing at least one genre / one artist with their query (mean over queries;
        queries without genres are left out of the genre share)."""
        genre_hits, artist_hits = [], []
        for q, row in zip(query_positions, neighbours, strict=True):
            q_genres, q_artists = self.genre_sets_[q], self.artist_sets_[q]
            if q_genres:
                genre_hits.append(np.mean([bool(q_genres & self.genre_sets_[n]) for n in row]))
            artist_hits.append(np.mean([bool(q_artists & self.artist_sets_[n]) for n in row]))
        return {
            "genre_agreement": float(np.mean(genre_hits)) if genre_hits else float("nan"),
            "artist_agreement": float(np.mean(artist_hits)) if artist_hits else float("nan"),
        }

    def random_neighbours(self, query_positions: np.ndarray, k: int, seed: int) -> np.ndarray:
        """k random catalogue tracks per query, never the query or its copies: the baseline."""
        rng = np.random.default_rng(seed)
        n = len(self.vectors_)
        out = np.empty((len(query_positions), k), dtype="int64")
        for i, q in enumerate(query_positions):
            banned = set(self.copies_of_code(int(self.song_codes_[q])).tolist()) | {int(q)}
            picks: list[int] = []
            while len(picks) < k:
                candidate = int(rng.integers(n))
                if candidate not in banned and candidate not in picks:
                    picks.append(candidate)
            out[i] = picks
        return out


def table_genre_agreement(queries: pd.DataFrame, table: pd.DataFrame) -> float:
    """Genre agreement from a neighbour table (the pyfunc's answer): per query with genres, the share of its
    neighbours sharing one; the mean over queries."""
    query_genres = genre_sets(queries)
    neighbour_genres = split_set(table["track_genre"], GENRE_SEPARATOR)
    hits: dict[int, list[bool]] = {}
    for q, genres in zip(table["query"].to_numpy(), neighbour_genres, strict=True):
        if query_genres[int(q)]:
            hits.setdefault(int(q), []).append(bool(query_genres[int(q)] & genres))
    if not hits:
        raise DiscoveryInputError("no query row has a genre: genre agreement is undefined")
    return float(np.mean([np.mean(v) for v in hits.values()]))
