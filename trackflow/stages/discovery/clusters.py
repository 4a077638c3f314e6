"""Discovery part clusters: KMeans with the choice of k made visible, HDBSCAN niche flags, profiles."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from components.discovery.clusters import (
    TrackClusterer,
    cluster_profiles,
    genre_agreement,
    k_scan,
    random_agreement,
)
from components.discovery.report import clusters_markdown, k_scan_figure
from components.discovery.space import genre_sets
from components.io import atomic_dir, write_json, write_text
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import (
    clusters_holdout_silhouette,
    holdout_sample,
    load_tracks,
    log,
    round_floats,
    save_figure,
    save_model,
)


def discover_clusters(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    cp, dp, seed = params.discovery.clusters, params.discovery.density, params.discovery.seed
    tracks, is_test = load_tracks(paths, params)
    train = tracks.loc[~is_test].reset_index(drop=True)
    started = time.perf_counter()
    clusterer = TrackClusterer(
        k=cp.k,
        features=params.discovery.features,
        seed=seed,
        n_init=cp.n_init,
        min_cluster_size=dp.min_cluster_size,
        min_samples=dp.min_samples,
        selection=dp.selection,
        density_sample=dp.sample,
    ).fit(train)
    log.info("clusters: KMeans k=%d and HDBSCAN fitted in %.1f s", cp.k, time.perf_counter() - started)
    scan = k_scan(clusterer.embed(train), cp.k_range, seed, cp.n_init, cp.score_sample)
    assignments = clusterer.predict(tracks)
    assignments.insert(0, "track_id", tracks["track_id"].astype(str).to_numpy())
    profiles = cluster_profiles(tracks, assignments, clusterer, cp.top_genres, cp.typical_tracks)
    sets = genre_sets(tracks)
    labels = assignments["cluster"].to_numpy()
    agreement = genre_agreement(labels, sets)
    baseline = random_agreement(labels, sets, seed)
    holdout = holdout_sample(tracks, is_test, cp.score_sample, seed)
    density_sizes = pd.Series(assignments["density_cluster"]).value_counts().sort_index()
    density_profiles = []
    for label, size in density_sizes.items():
        if label < 0:
            continue
        members = np.flatnonzero(assignments["density_cluster"].to_numpy() == label)
        top = pd.Series([g for i in members for g in sets[i]]).value_counts().head(cp.top_genres)
        density_profiles.append(
            {
                "density_cluster": int(label),
                "size": int(size),
                "top_genres": {k: int(v) for k, v in top.items()},
            }
        )
    metrics = {
        "k": cp.k,
        "silhouette_sample": float(scan.loc[scan["k"] == cp.k, "silhouette_sample"].iloc[0])
        if cp.k in set(scan["k"])
        else None,
        "silhouette_holdout": clusters_holdout_silhouette(
            clusterer, clusterer.predict(holdout)["cluster"].to_numpy(), holdout
        ),
        "davies_bouldin": float(scan.loc[scan["k"] == cp.k, "davies_bouldin"].iloc[0])
        if cp.k in set(scan["k"])
        else None,
        "best_silhouette_k": int(scan.loc[scan["silhouette_sample"].idxmax(), "k"]),
        "best_davies_bouldin_k": int(scan.loc[scan["davies_bouldin"].idxmin(), "k"]),
        "purity": agreement["purity"],
        "coverage": agreement["coverage"],
        "random_purity": baseline["purity"],
        "random_coverage": baseline["coverage"],
        "density_clusters": int((density_sizes.index >= 0).sum()),
        "density_noise_share_sample": float(np.mean(clusterer.density_labels_ == -1)),
        "niche_share": float(assignments["niche"].mean()),
        "density_sample_size": len(clusterer.density_labels_),
        "silhouette_sample_size": min(cp.score_sample, len(train)),
        "tracks": len(tracks),
        "train_tracks": len(train),
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_dir(paths.discovery_part("clusters")) as staging:
        save_model(clusterer, staging / "model.pkl")
        assignments.to_parquet(staging / "assignments.parquet", index=False)
        write_json(round_floats(profiles), staging / "profiles.json")
        write_json(round_floats(density_profiles), staging / "density_profiles.json")
        write_json(round_floats(scan.to_dict(orient="records")), staging / "k_scan.json")
        write_json(round_floats(metrics), staging / "metrics.json")
    save_figure(k_scan_figure(scan, cp.k), paths.discovery_reports / "k_scan.png")
    write_text(
        clusters_markdown(profiles, density_profiles, scan, metrics), paths.discovery_reports / "clusters.md"
    )
    log.info("clusters: %s", round_floats(metrics))
    return round_floats(metrics)
