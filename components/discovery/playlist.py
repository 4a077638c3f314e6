"""Playlists from seed tracks or from target audio preferences, ordered for smooth transitions.

Targets: `energy=0.8` (a point: within `tolerance_sd` standard deviations of it), `tempo=120:130` (a range),
`valence=high` / `valence=low` (the catalogue's top / bottom quartile). Tracks meeting every target come
first, closest to the targets' centres; copies of one song and more than `max_per_artist` tracks of one
primary artist are skipped. Ordering minimises the transition cost |tempo step| / tempo_step_bpm +
key_weight x steps on the Camelot wheel (circle of fifths; a relative major/minor switch is one step): greedy
from every start track, then 2-opt.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from components.discovery.similarity import SimilarityIndex
from components.discovery.space import DiscoveryInputError
from components.schema import ARTIST_SEPARATOR, AUDIO_FEATURES

TARGET_FEATURES: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms", "popularity")
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"


@dataclass(frozen=True)
class Target:
    feature: str
    low: float
    high: float
    centre: float
    spec: str

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "low": self.low, "high": self.high, "spec": self.spec}


def parse_target(spec: str, catalog: pd.DataFrame, tolerance_sd: float) -> Target:
    """'feature=value', 'feature=low:high', 'feature=high' or 'feature=low' -> a Target (see module doc)."""
    match = re.fullmatch(r"\s*([a-z_]+)\s*=\s*(.+?)\s*", spec)
    if not match:
        raise DiscoveryInputError(
            f"target {spec!r} is not feature=value, feature=low:high or feature=high|low"
        )
    feature, value = match.group(1), match.group(2).lower()
    if feature not in TARGET_FEATURES or feature not in catalog.columns:
        raise DiscoveryInputError(
            f"target {spec!r}: unknown feature {feature!r}; choose from {list(TARGET_FEATURES)}"
        )
    column = catalog[feature].astype("float64")
    if value in ("high", "low"):
        q25, q75 = column.quantile([0.25, 0.75])
        low, high = (
            (float(q75), float(column.max())) if value == "high" else (float(column.min()), float(q25))
        )
        return Target(feature, low, high, (low + high) / 2, spec)
    if re.fullmatch(rf"{_NUMBER}:{_NUMBER}", value):
        low, high = (float(v) for v in value.split(":"))
        if low > high:
            raise DiscoveryInputError(f"target {spec!r}: the range's low end is above its high end")
        return Target(feature, low, high, (low + high) / 2, spec)
    if re.fullmatch(_NUMBER, value):
        centre = float(value)
        half = tolerance_sd * float(column.std())
        return Target(feature, centre - half, centre + half, centre, spec)
    raise DiscoveryInputError(f"target {spec!r}: {value!r} is not a number, a low:high range, high or low")


def parse_targets(specs: Sequence[str], catalog: pd.DataFrame, tolerance_sd: float) -> list[Target]:
    targets = [parse_target(s, catalog, tolerance_sd) for s in specs]
    features = [t.feature for t in targets]
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DiscoveryInputError(f"each feature may be targeted once; repeated: {repeated}")
    if not targets:
        raise DiscoveryInputError("give at least one target, e.g. energy=0.8 or tempo=120:130")
    return targets


def within_targets(values: pd.DataFrame, targets: Sequence[Target]) -> pd.DataFrame:
    """One boolean column per target: the row lies inside the target's range."""
    return pd.DataFrame(
        {t.feature: values[t.feature].astype("float64").between(t.low, t.high) for t in targets},
        index=values.index,
    )


def _primary_artist(artists: Any) -> str:
    return str(artists).split(ARTIST_SEPARATOR, 1)[0].strip().lower() if isinstance(artists, str) else ""


def _take(
    index: SimilarityIndex, ranked: np.ndarray, n: int, max_per_artist: int, banned_songs: set[int]
) -> list[int]:
    """Walk `ranked` catalogue positions, skipping copies of songs already taken (or banned) and artists at
    their cap, until n are chosen."""
    chosen: list[int] = []
    songs = set(banned_songs)
    per_artist: dict[str, int] = {}
    artists = index.catalog_["artists"].to_numpy()
    for position in ranked:
        song = int(index.song_codes_[position])
        artist = _primary_artist(artists[position])
        if song in songs or per_artist.get(artist, 0) >= max_per_artist:
            continue
        chosen.append(int(position))
        songs.add(song)
        per_artist[artist] = per_artist.get(artist, 0) + 1
        if len(chosen) == n:
            break
    return chosen


def select_by_targets(
    index: SimilarityIndex, targets: Sequence[Target], n: int, max_per_artist: int
) -> np.ndarray:
    """Catalogue positions of n tracks: those meeting every target first, closest to the targets' centres."""
    catalog = index.catalog_
    within = within_targets(catalog, targets).all(axis=1).to_numpy()
    closeness = np.zeros(len(catalog))
    for t in targets:
        column = catalog[t.feature].astype("float64")
        closeness += ((column - t.centre) / (float(column.std()) or 1.0)).to_numpy() ** 2
    # In-range tracks first (lexsort: last key is primary), then closest to the centres; ties by position.
    ranked = np.lexsort((np.arange(len(catalog)), closeness, ~within))
    return np.asarray(_take(index, ranked, n, max_per_artist, set()), dtype="int64")


def select_by_seeds(
    index: SimilarityIndex,
    seed_ids: Sequence[str],
    n: int,
    max_per_artist: int,
    genre_weight: float | None = None,
) -> np.ndarray:
    """n tracks nearest the seeds' centroid in the audio space (genre-weighted like the index), never a
    seed or a copy of one."""
    if not seed_ids:
        raise DiscoveryInputError("give at least one seed track id")
    seeds = index.positions(seed_ids)
    weight = index.genre_weight if genre_weight is None else float(genre_weight)
    centroid = index.vectors_[seeds].mean(axis=0, keepdims=True)
    genres = index.genres_[seeds].mean(axis=0)
    genres = sparse.csr_matrix(np.asarray(genres, dtype="float32"))
    excluded = np.unique(
        np.concatenate([np.r_[s, index.copies_of_code(int(index.song_codes_[s]))] for s in seeds])
    )
    pool = min(len(index.vectors_) - len(excluded), max(n * 20, 200))
    ranked, _ = index.search_vectors(centroid, genres, [excluded.astype("int64")], pool, weight)
    banned = {int(index.song_codes_[s]) for s in seeds}
    return np.asarray(_take(index, ranked[0], n, max_per_artist, banned), dtype="int64")


# --- ordering ---
def camelot_position(key: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Position 0..11 on the circle of fifths; a minor key takes its relative major's position."""
    key, mode = np.asarray(key, dtype="int64"), np.asarray(mode, dtype="int64")
    return (7 * np.where(mode == 1, key, key + 3)) % 12


def camelot_code(key: int, mode: int) -> str:
    """The DJ notation: C major = 8B, A minor = 8A."""
    number = (int(camelot_position(np.array([key]), np.array([mode]))[0]) + 7) % 12 + 1
    return f"{number}{'B' if mode == 1 else 'A'}"


def key_name(key: int, mode: int) -> str:
    return f"{KEY_NAMES[int(key) % 12]} {'major' if mode == 1 else 'minor'}"


def key_steps(key: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Pairwise steps on the Camelot wheel: circle-of-fifths distance + 1 when major/minor differ."""
    position = camelot_position(key, mode)
    diff = np.abs(position[:, None] - position[None, :])
    return np.minimum(diff, 12 - diff) + (np.asarray(mode)[:, None] != np.asarray(mode)[None, :])


def transition_costs(
    tempo: np.ndarray, key: np.ndarray, mode: np.ndarray, tempo_step_bpm: float, key_weight: float
) -> np.ndarray:
    tempo = np.asarray(tempo, dtype="float64")
    return np.abs(tempo[:, None] - tempo[None, :]) / tempo_step_bpm + key_weight * key_steps(key, mode)


def _path_cost(cost: np.ndarray, order: Sequence[int]) -> float:
    return float(sum(cost[a, b] for a, b in itertools.pairwise(order)))


def order_for_transitions(
    tempo: np.ndarray,
    key: np.ndarray,
    mode: np.ndarray,
    tempo_step_bpm: float = 10.0,
    key_weight: float = 1.0,
) -> np.ndarray:
    """An order of the tracks with a low total transition cost (greedy from each start, then 2-opt)."""
    n = len(tempo)
    if n <= 2:
        return np.arange(n)
    cost = transition_costs(tempo, key, mode, tempo_step_bpm, key_weight)
    best, best_cost = None, np.inf
    for start in range(n):
        order, left = [start], set(range(n)) - {start}
        while left:
            nxt = min(left, key=lambda j: (cost[order[-1], j], j))
            order.append(nxt)
            left.remove(nxt)
        total = _path_cost(cost, order)
        if total < best_cost - 1e-12:
            best, best_cost = order, total
    order = list(best or range(n))
    improved = True
    while improved:  # 2-opt on an open path: reverse a segment when that lowers the cost
        improved = False
        for i in range(n - 1):
            for j in range(i + 2, n + 1):
                candidate = order[:i] + order[i:j][::-1] + order[j:]
                if _path_cost(cost, candidate) < _path_cost(cost, order) - 1e-9:
                    order, improved = candidate, True
    return np.asarray(order, dtype="int64")


def transition_stats(tempo: np.ndarray, key: np.ndarray, mode: np.ndarray) -> dict[str, float]:
    """Mean |tempo step| (BPM) and mean Camelot steps between consecutive tracks, in the given order."""
    tempo = np.asarray(tempo, dtype="float64")
    if len(tempo) < 2:
        return {"mean_abs_tempo_step": 0.0, "mean_key_steps": 0.0}
    steps = key_steps(key, mode)
    return {
        "mean_abs_tempo_step": float(np.mean(np.abs(np.diff(tempo)))),
        "mean_key_steps": float(np.mean([steps[i, i + 1] for i in range(len(tempo) - 1)])),
    }


def random_order_stats(
    tempo: np.ndarray, key: np.ndarray, mode: np.ndarray, seed: int, repeats: int = 20
) -> dict[str, float]:
    """The same statistics averaged over seeded random orders of the same tracks: the baseline."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repeats):
        order = rng.permutation(len(tempo))
        runs.append(
            transition_stats(np.asarray(tempo)[order], np.asarray(key)[order], np.asarray(mode)[order])
        )
    return {name: float(np.mean([r[name] for r in runs])) for name in runs[0]}


def playlist_table(
    index: SimilarityIndex,
    positions: np.ndarray,
    targets: Sequence[Target] = (),
    tempo_step_bpm: float = 10.0,
    key_weight: float = 1.0,
) -> pd.DataFrame:
    """The chosen tracks, ordered for transitions, with tempo, key (name and Camelot code) and, per target,
    whether the track meets it."""
    rows = index.catalog_.iloc[np.asarray(positions, dtype="int64")].reset_index(drop=True)
    key = rows["key"].round().astype("int64").to_numpy()
    mode = rows["mode"].round().astype("int64").to_numpy()
    order = order_for_transitions(rows["tempo"].to_numpy("float64"), key, mode, tempo_step_bpm, key_weight)
    rows = rows.iloc[order].reset_index(drop=True)
    key, mode = key[order], mode[order]
    table = pd.DataFrame(
        {
            "position": np.arange(1, len(rows) + 1),
            "track_id": rows["track_id"].astype(str),
            "track_name": rows["track_name"].astype(str),
            "artists": rows["artists"].astype(str),
            "track_genre": rows["track_genre"].astype(str) if "track_genre" in rows else "",
            "tempo": rows["tempo"].astype("float64").round(1),
            "key": [key_name(k, m) for k, m in zip(key, mode, strict=True)],
            "camelot": [camelot_code(k, m) for k, m in zip(key, mode, strict=True)],
        }
    )
    for t in targets:
        if t.feature not in table.columns:
            table[t.feature] = rows[t.feature].astype("float64").round(3).to_numpy()
    if targets:
        table["meets_targets"] = within_targets(rows, targets).all(axis=1).to_numpy()
    return table


def adherence(table: pd.DataFrame, index: SimilarityIndex, targets: Sequence[Target]) -> dict[str, Any]:
    """Share of the playlist inside every target, and per target."""
    rows = index.catalog_.set_index(index.catalog_["track_id"].astype(str)).loc[table["track_id"]]
    inside = within_targets(rows, targets)
    return {
        "share_within_all": float(inside.all(axis=1).mean()),
        "share_within": {t.feature: float(inside[t.feature].mean()) for t in targets},
    }
