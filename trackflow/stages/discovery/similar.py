"""Discovery part similar: the exact similar-track index over the catalogue, judged on held-out queries."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from components.discovery.clusters import (
    seeded_sample,
)
from components.discovery.report import similar_examples_markdown
from components.discovery.similarity import SimilarityIndex
from components.io import atomic_dir, write_json, write_text
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import load_tracks, log, round_floats, save_model


def discover_similar(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    sp, seed = params.discovery.similar, params.discovery.seed
    tracks, is_test = load_tracks(paths, params)
    train = tracks.loc[~is_test].reset_index(drop=True)
    started = time.perf_counter()
    index = SimilarityIndex(params.discovery.features, genre_weight=sp.genre_weight).fit(train).build(tracks)
    build_seconds = time.perf_counter() - started
    held_out_ids = tracks.loc[is_test, "track_id"].astype(str).to_numpy()
    queries = index.positions(held_out_ids[seeded_sample(len(held_out_ids), sp.eval_queries, seed)])
    evaluation: dict[str, Any] = {}
    for weight in sorted({0.0, sp.genre_weight, sp.eval_genre_weight}):
        neighbours, _ = index.catalogue_neighbours(queries, sp.k, weight)
        evaluation[f"genre_weight_{weight:g}"] = index.agreement(queries, neighbours)
    evaluation["random"] = index.agreement(queries, index.random_neighbours(queries, sp.k, seed))
    # Latency of one query after load: the CLI's path (id lookup, one search, the table).
    timing_ids = held_out_ids[seeded_sample(len(held_out_ids), 50, seed + 1)]
    tick = time.perf_counter()
    for track_id in timing_ids:
        index.similar_to([track_id], sp.k)
    query_ms = 1000 * (time.perf_counter() - tick) / len(timing_ids)
    default = evaluation[f"genre_weight_{sp.genre_weight:g}"]
    metrics = {
        "k": sp.k,
        "genre_weight": sp.genre_weight,
        "genre_agreement_at_k": default["genre_agreement"],
        "artist_agreement_at_k": default["artist_agreement"],
        "random_genre_agreement_at_k": evaluation["random"]["genre_agreement"],
        "random_artist_agreement_at_k": evaluation["random"]["artist_agreement"],
        "by_genre_weight": {k: v for k, v in evaluation.items() if k != "random"},
        "eval_queries": len(queries),
        "catalogue_tracks": len(tracks),
        "copies_excluded_songs": int((np.bincount(index.song_codes_) > 1).sum()),
        "query_ms": query_ms,
        "build_seconds": build_seconds,
        "seconds": round(time.perf_counter() - started, 1),
    }
    examples = similar_examples_markdown(index, tracks, sp.k)
    with atomic_dir(paths.discovery_part("similar")) as staging:
        save_model(index, staging / "model.pkl")
        write_json(round_floats(metrics), staging / "metrics.json")
    write_text(examples, paths.discovery_reports / "similar_examples.md")
    log.info("similar: %s", round_floats(metrics))
    return round_floats(metrics)
