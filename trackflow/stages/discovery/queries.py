"""What `trackflow similar` and `trackflow playlist` answer: from the saved index, not MLflow, for speed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from components.discovery.playlist import (
    adherence,
    parse_targets,
    playlist_table,
    select_by_seeds,
    select_by_targets,
)
from components.discovery.similarity import SimilarityIndex
from components.discovery.space import DiscoveryInputError, raw_columns
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import load_model
from trackflow.stages.discovery.playlists import _ordering_stats

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def _audio_rows(path: Path, params: Params) -> pd.DataFrame:
    """Dataset-schema rows for one audio file (components/audio); NaN features are imputed by the index's
    space with the training medians."""
    try:
        from components.audio import extract_files
    except ImportError as exc:  # the audio package is optional for everything else
        raise DiscoveryInputError(f"{path}: audio queries need components.audio ({exc})") from exc
    batch = extract_files([path], params.audio, n_workers=1)
    if batch.errors:
        raise DiscoveryInputError(f"{path}: {batch.errors[0].reason}")
    return batch.tracks


def _index(paths: ProjectPaths, index: SimilarityIndex | None) -> tuple[SimilarityIndex, float]:
    """The given index (a server's, loaded once), or the saved one; and the milliseconds loading took."""
    if index is not None:
        return index, 0.0
    tick = time.perf_counter()
    loaded: SimilarityIndex = load_model(paths, "similar")
    return loaded, 1000 * (time.perf_counter() - tick)


def find_similar(
    paths: ProjectPaths,
    params: Params,
    query: str,
    k: int | None = None,
    genre_weight: float | None = None,
    index: SimilarityIndex | None = None,
) -> dict[str, Any]:
    """Neighbours of a catalogue track (by track_id) or of an audio file, with load and query times; from
    `index` when given (the model server's `similar-tracks@champion`), else the saved one."""
    index, load_ms = _index(paths, index)
    k = params.discovery.similar.k if k is None else k
    tick = time.perf_counter()
    candidate = Path(query)
    if candidate.suffix.lower() in AUDIO_SUFFIXES:
        if not candidate.is_file():
            raise FileNotFoundError(f"{candidate}: no such audio file")
        rows = _audio_rows(candidate, params)
        extract_ms = 1000 * (time.perf_counter() - tick)
        tick = time.perf_counter()
        table = index.query(rows, k, genre_weight)
        described = {"source": "audio", "path": str(candidate), **_describe_query(index, rows)}
    else:
        extract_ms = 0.0
        table = index.similar_to([query], k, genre_weight)
        row = index.catalog_.iloc[int(index.positions([query])[0])]
        described = {
            "source": "catalogue",
            "track_id": str(row["track_id"]),
            "track_name": str(row["track_name"]),
            "artists": str(row["artists"]),
            "track_genre": str(row["track_genre"]),
        }
    query_ms = 1000 * (time.perf_counter() - tick)
    return {
        "query": described,
        "k": k,
        "genre_weight": index.genre_weight if genre_weight is None else genre_weight,
        "neighbours": table.drop(columns=["query"]).to_dict(orient="records"),
        "timing_ms": {
            "load": round(load_ms, 1),
            "extract": round(extract_ms, 1),
            "query": round(query_ms, 2),
        },
    }


def _describe_query(index: SimilarityIndex, rows: pd.DataFrame) -> dict[str, Any]:
    """The audio query's features as the index sees them (after imputation), and which were imputed."""
    raw = index.space_.raw_features(rows).iloc[0]
    imputed = [c for c in raw_columns(index.features) if c in rows.columns and pd.isna(rows[c].iloc[0])]
    return {
        "track_name": str(rows["track_name"].iloc[0]),
        "features": {k: round(float(v), 4) for k, v in raw.items()},
        "imputed_with_training_medians": imputed,
    }


def make_playlist(
    paths: ProjectPaths,
    params: Params,
    seeds: list[str] | None = None,
    targets: list[str] | None = None,
    n: int | None = None,
    genre_weight: float | None = None,
    index: SimilarityIndex | None = None,
) -> dict[str, Any]:
    """A playlist from seed track ids or from target preferences (not both), ordered for transitions;
    from `index` when given, else the saved one."""
    if bool(seeds) == bool(targets):
        raise DiscoveryInputError("give seed tracks (--seed) or target preferences (--target), not both")
    pp = params.discovery.playlist
    n = pp.n if n is None else n
    if n < 2:
        raise DiscoveryInputError(f"a playlist needs at least 2 tracks, got n={n}")
    index, load_ms = _index(paths, index)
    tick = time.perf_counter()
    parsed = parse_targets(targets, index.catalog_, pp.tolerance_sd) if targets else []
    if parsed:
        chosen = select_by_targets(index, parsed, n, pp.max_per_artist)
    else:
        chosen = select_by_seeds(index, list(seeds or []), n, pp.max_per_artist, genre_weight)
    table = playlist_table(index, chosen, parsed, pp.tempo_step_bpm, pp.key_weight)
    build_ms = 1000 * (time.perf_counter() - tick)
    selected = index.catalog_.iloc[chosen]
    result: dict[str, Any] = {
        "request": {"seeds": seeds or [], "targets": [t.as_dict() for t in parsed]},
        "n": len(table),
        "tracks": table.to_dict(orient="records"),
        "transitions": _ordering_stats(table, selected, params.discovery.seed),
        "timing_ms": {"load": round(load_ms, 1), "build": round(build_ms, 2)},
    }
    if parsed:
        result["adherence"] = adherence(table, index, parsed)
    if len(table) < n:
        result["warning"] = f"only {len(table)} tracks could be chosen (artist cap and copies excluded)"
    return result
