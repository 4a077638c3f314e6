"""Discovery part map: PCA of every track and t-SNE of a sample, coloured by cluster and genre."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from components.discovery.clusters import (
    TrackClusterer,
    seeded_sample,
)
from components.discovery.projection import highlight_genres, map_figure, pca_2d, tsne_2d
from components.discovery.space import DiscoveryInputError
from components.io import atomic_dir, read_json, write_json
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import load_model, load_tracks, round_floats, save_figure


def discover_map(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    mp, seed = params.discovery.map, params.discovery.seed
    clusterer: TrackClusterer = load_model(paths, "clusters")
    assignments = pd.read_parquet(paths.discovery_part("clusters") / "assignments.parquet")
    profiles = read_json(paths.discovery_part("clusters") / "profiles.json")
    tracks, is_test = load_tracks(paths, params)
    if not assignments["track_id"].astype(str).equals(tracks["track_id"].astype(str)):
        raise DiscoveryInputError(
            "cluster assignments are stale (other tracks): rerun `trackflow discover --part clusters`"
        )
    started = time.perf_counter()
    Z = clusterer.embed(tracks)
    pca_xy, variance = pca_2d(Z[~is_test], Z, seed)
    sample = seeded_sample(len(Z), mp.tsne_sample, seed)
    tsne_xy = tsne_2d(Z[sample], seed, mp.perplexity)
    labels = assignments["cluster"].to_numpy()
    primary = tracks["track_genre"].astype(str).str.split("|").str[0].to_numpy()
    genres = highlight_genres(labels, primary, mp.highlight_genres)
    names = {int(p["cluster"]): p["name"] for p in profiles}
    figure = map_figure(
        pca_xy, labels, primary, tsne_xy, labels[sample], primary[sample], names, genres, variance, seed
    )
    save_figure(figure, paths.discovery_reports / "map.png")
    coords = pd.DataFrame(
        {
            "track_id": tracks["track_id"].astype(str),
            "pca_x": pca_xy[:, 0],
            "pca_y": pca_xy[:, 1],
            "cluster": labels,
        }
    )
    coords["tsne_x"], coords["tsne_y"] = np.nan, np.nan
    coords.loc[sample, "tsne_x"], coords.loc[sample, "tsne_y"] = tsne_xy[:, 0], tsne_xy[:, 1]
    metrics = {
        "pca_explained_variance": [float(v) for v in variance],
        "tsne_sample": len(sample),
        "highlighted_genres": genres,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_dir(paths.discovery_part("map")) as staging:
        coords.to_parquet(staging / "coords.parquet", index=False)
        write_json(round_floats(metrics), staging / "metrics.json")
    return round_floats(metrics)
