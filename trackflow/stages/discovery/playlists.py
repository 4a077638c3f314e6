"""Discovery part playlists: canned target and seed requests, ordered for smooth tempo and key steps."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from components.discovery.playlist import (
    adherence,
    parse_targets,
    playlist_table,
    random_order_stats,
    select_by_seeds,
    select_by_targets,
    transition_stats,
)
from components.discovery.similarity import SimilarityIndex
from components.io import atomic_dir, write_json, write_text
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import load_model, load_tracks, log, round_floats


def discover_playlists(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    pp, seed = params.discovery.playlist, params.discovery.seed
    index: SimilarityIndex = load_model(paths, "similar")
    tracks, is_test = load_tracks(paths, params)
    started = time.perf_counter()
    by_target, report = [], ["# Playlists", ""]
    for specs in pp.eval_targets:
        targets = parse_targets(specs, index.catalog_, pp.tolerance_sd)
        chosen = select_by_targets(index, targets, pp.n, pp.max_per_artist)
        table = playlist_table(index, chosen, targets, pp.tempo_step_bpm, pp.key_weight)
        selected = index.catalog_.iloc[chosen]
        stats = _ordering_stats(table, selected, seed)
        by_target.append({"targets": list(specs), **adherence(table, index, targets), **stats})
        report += [f"## {' '.join(specs)}", "", table.to_markdown(index=False), ""]
    held_out = tracks.loc[is_test].reset_index(drop=True)
    primary = held_out["track_genre"].astype(str).str.split("|").str[0]
    counts = primary.value_counts()
    eligible = sorted(counts[counts >= pp.eval_seeds].index)
    rng = np.random.default_rng(seed)
    by_seed = []
    for genre in rng.choice(eligible, size=min(pp.eval_seed_sets, len(eligible)), replace=False):
        members = held_out.loc[primary == genre, "track_id"].astype(str).to_numpy()
        seeds = list(rng.choice(members, size=pp.eval_seeds, replace=False))
        chosen = select_by_seeds(index, seeds, pp.n, pp.max_per_artist)
        seed_genres = set().union(*(index.genre_sets_[p] for p in index.positions(seeds)))
        random_pool = rng.choice(len(index.catalog_), size=pp.n, replace=False)
        table = playlist_table(index, chosen, (), pp.tempo_step_bpm, pp.key_weight)
        by_seed.append(
            {
                "genre": str(genre),
                "seeds": seeds,
                "share_sharing_seed_genre": float(
                    np.mean([bool(index.genre_sets_[p] & seed_genres) for p in chosen])
                ),
                "random_share_sharing_seed_genre": float(
                    np.mean([bool(index.genre_sets_[p] & seed_genres) for p in random_pool])
                ),
                **_ordering_stats(table, index.catalog_.iloc[chosen], seed),
            }
        )
        if len(by_seed) <= 2:
            report += [f"## seeds from {genre}: {', '.join(seeds)}", "", table.to_markdown(index=False), ""]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    metrics = {
        "n": pp.n,
        "target_share_within_all": mean(by_target, "share_within_all"),
        "target_mean_abs_tempo_step": mean(by_target, "mean_abs_tempo_step"),
        "target_random_order_mean_abs_tempo_step": mean(by_target, "random_mean_abs_tempo_step"),
        "target_selection_order_mean_abs_tempo_step": mean(by_target, "selection_mean_abs_tempo_step"),
        "target_mean_key_steps": mean(by_target, "mean_key_steps"),
        "target_random_order_mean_key_steps": mean(by_target, "random_mean_key_steps"),
        "seed_share_sharing_seed_genre": mean(by_seed, "share_sharing_seed_genre"),
        "seed_random_share_sharing_seed_genre": mean(by_seed, "random_share_sharing_seed_genre"),
        "seed_mean_abs_tempo_step": mean(by_seed, "mean_abs_tempo_step"),
        "seed_random_order_mean_abs_tempo_step": mean(by_seed, "random_mean_abs_tempo_step"),
        "by_target": by_target,
        "seed_sets": len(by_seed),
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_dir(paths.discovery_part("playlists")) as staging:
        write_json(round_floats(by_seed), staging / "seed_playlists.json")
        write_json(round_floats(metrics), staging / "metrics.json")
    write_text("\n".join(report) + "\n", paths.discovery_reports / "playlists.md")
    log.info("playlists: %s", {k: v for k, v in round_floats(metrics).items() if k != "by_target"})
    return round_floats(metrics)


def _ordering_stats(table: pd.DataFrame, selected: pd.DataFrame, seed: int) -> dict[str, float]:
    """Transition statistics of the ordered playlist, of random orders and of the selection order."""
    ordered = selected.set_index(selected["track_id"].astype(str)).loc[table["track_id"]]
    tempo = ordered["tempo"].to_numpy("float64")
    key = ordered["key"].round().astype("int64").to_numpy()
    mode = ordered["mode"].round().astype("int64").to_numpy()
    ours = transition_stats(tempo, key, mode)
    rand = random_order_stats(tempo, key, mode, seed)
    as_selected = transition_stats(
        selected["tempo"].to_numpy("float64"),
        selected["key"].round().astype("int64").to_numpy(),
        selected["mode"].round().astype("int64").to_numpy(),
    )
    return {
        **ours,
        "random_mean_abs_tempo_step": rand["mean_abs_tempo_step"],
        "random_mean_key_steps": rand["mean_key_steps"],
        "selection_mean_abs_tempo_step": as_selected["mean_abs_tempo_step"],
    }
