"""Discovery stages: clusters, outliers, similar tracks, playlists, the 2-D map, the summary, registration.

Every model is fitted on the main protocol's training tracks; the held-out tracks (its test side) are the
evaluation queries. Each part writes its own folder under data/discovery/ (whole, atomically), its report
files under reports/discovery/, and a `metrics.json` that the summary stage gathers into
metrics/discovery.json and one MLflow run. Registration reads the pickled models and registers `clusters`,
`outliers` and `similar-tracks` behind the champion/challenger gate.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from components import registry
from components.discovery.clusters import (
    TrackClusterer,
    cluster_profiles,
    genre_agreement,
    k_scan,
    random_agreement,
    seeded_sample,
)
from components.discovery.outliers import OutlierDetector, shuffle_columns, synthetic_anomaly_auc
from components.discovery.playlist import (
    adherence,
    parse_targets,
    playlist_table,
    random_order_stats,
    select_by_seeds,
    select_by_targets,
    transition_stats,
)
from components.discovery.projection import highlight_genres, map_figure, pca_2d, tsne_2d
from components.discovery.similarity import SimilarityIndex, table_genre_agreement
from components.discovery.space import DiscoveryInputError, copy_groups, genre_sets, raw_columns
from components.io import atomic_dir, atomic_path, read_json, write_json, write_text
from components.modeling import MODEL_INPUT_COLUMNS, model_inputs
from components.params import Params
from components.schema import LABEL_COLUMNS
from trackflow.parts import SERIAL, Parts, raise_first_failure
from trackflow.paths import ProjectPaths
from trackflow.stages import git_commit, mlflow_client, params_hash

log = logging.getLogger("trackflow.discovery")
PARTS = ("clusters", "outliers", "similar", "playlists", "map")
TIMING_KEYS = frozenset({"seconds", "query_ms", "build_seconds"})
# Registered model name -> the part that fits it.
REGISTERED = {"clusters": "clusters", "outliers": "outliers", "similar-tracks": "similar"}
# Raw input columns of each registered model. clusters and outliers take a scoring batch as it comes, without
# the label columns (track_genre only refines the imputation of missing values); similar-tracks also takes the
# genres, which its genre weighting uses.
INPUT_COLUMNS = {
    "clusters": tuple(c for c in MODEL_INPUT_COLUMNS if c not in LABEL_COLUMNS),
    "outliers": tuple(c for c in MODEL_INPUT_COLUMNS if c not in LABEL_COLUMNS),
    "similar-tracks": MODEL_INPUT_COLUMNS,
}
GATE_METRICS = {
    "clusters": "silhouette_holdout",
    "outliers": "synthetic_anomaly_auc",
    "similar-tracks": "genre_agreement_at_k",
}


# --- shared helpers ---
def load_tracks(paths: ProjectPaths, params: Params) -> tuple[pd.DataFrame, np.ndarray]:
    """The per-track table and a boolean mask of its main-protocol held-out (test) tracks."""
    for needed, stage in ((paths.features, "featurize"), (paths.splits, "split")):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: missing; run `trackflow {stage}` (or the training flow) first"
            )
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    column = f"split_{params.split.protocol}"
    side = tracks[["track_id"]].merge(splits[["track_id", column]], on="track_id", how="left")[column]
    if side.isna().any():
        raise DiscoveryInputError(
            f"{int(side.isna().sum())} tracks have no split assignment: rerun `trackflow split`"
        )
    return tracks, (side == "test").to_numpy()


def save_model(model: Any, target: Path) -> None:
    with atomic_path(target, ".pkl") as tmp, tmp.open("wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(paths: ProjectPaths, part: str) -> Any:
    """A fitted discovery model written by this project's own stage (a local pickle we wrote)."""
    path = paths.discovery_model(part)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {part} model; run `trackflow discover --part {part}` first")
    with path.open("rb") as handle:
        return pickle.load(handle)


def _holdout_sample(tracks: pd.DataFrame, is_test: np.ndarray, size: int, seed: int) -> pd.DataFrame:
    held_out = tracks.loc[is_test].reset_index(drop=True)
    return held_out.iloc[seeded_sample(len(held_out), size, seed)].reset_index(drop=True)


def _save_figure(figure: Any, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, ".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return target


def _r(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float | np.floating):
        return round(float(value), digits)
    if isinstance(value, dict):
        return {k: _r(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_r(v, digits) for v in value]
    return value


def clusters_holdout_silhouette(clusterer: TrackClusterer, labels: np.ndarray, rows: pd.DataFrame) -> float:
    """Silhouette of `labels` for `rows` in `clusterer`'s space (the clusters gate: the same rows and space
    judge the challenger's and the champion's labels)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(clusterer.embed(rows), labels))


# --- 1. clusters ---
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
    holdout = _holdout_sample(tracks, is_test, cp.score_sample, seed)
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
        write_json(_r(profiles), staging / "profiles.json")
        write_json(_r(density_profiles), staging / "density_profiles.json")
        write_json(_r(scan.to_dict(orient="records")), staging / "k_scan.json")
        write_json(_r(metrics), staging / "metrics.json")
    _k_scan_plot(scan, cp.k, paths.discovery_reports / "k_scan.png")
    write_text(
        _clusters_markdown(profiles, density_profiles, scan, metrics), paths.discovery_reports / "clusters.md"
    )
    log.info("clusters: %s", _r(metrics))
    return _r(metrics)


def _k_scan_plot(scan: pd.DataFrame, k: int, target: Path) -> Path:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(scan["k"], scan["silhouette_sample"], "o-")
    axes[0].set(xlabel="k", ylabel="silhouette (seeded sample)", title="Silhouette (higher is better)")
    axes[1].plot(scan["k"], scan["davies_bouldin"], "o-", color="darkorange")
    axes[1].set(xlabel="k", ylabel="Davies-Bouldin", title="Davies-Bouldin (lower is better)")
    for ax in axes:
        ax.axvline(k, color="grey", ls="--", lw=1)
    figure.tight_layout()
    return _save_figure(figure, target)


def _clusters_markdown(
    profiles: list[dict[str, Any]], density: list[dict[str, Any]], scan: pd.DataFrame, metrics: dict[str, Any]
) -> str:
    lines = [
        f"# Track clusters (KMeans, k={metrics['k']})",
        "",
        f"Purity {metrics['purity']:.3f} (random assignment {metrics['random_purity']:.3f}), coverage "
        f"{metrics['coverage']:.3f} (random {metrics['random_coverage']:.3f}); niche tracks (HDBSCAN noise) "
        f"{metrics['niche_share']:.1%}.",
        "",
        "## Choice of k",
        "",
        "| k | silhouette (sample) | Davies-Bouldin | inertia |",
        "|---|---|---|---|",
    ]
    for row in scan.itertuples():
        lines.append(
            f"| {row.k} | {row.silhouette_sample:.4f} | {row.davies_bouldin:.4f} | {row.inertia:,.0f} |"
        )
    lines += ["", "## Profiles", ""]
    for p in profiles:
        genres = ", ".join(f"{g['genre']} {g['share']:.0%} (x{g['lift']})" for g in p["top_genres"])
        typical = "; ".join(f"{t['track_name']} - {t['artists']}" for t in p["typical_tracks"])
        means = ", ".join(f"{k} {v:.2f}" for k, v in p["mean_features"].items())
        lines += [
            f"### Cluster {p['cluster']}: {p['name']} ({p['size']:,} tracks, {p['share']:.1%})",
            "",
            f"- top genres (share of the cluster, lift over the catalogue): {genres}",
            f"- mean features: {means}",
            f"- most typical: {typical}",
            "",
        ]
    lines += ["## Density clusters (HDBSCAN)", ""]
    for d in density:
        lines.append(f"- {d['density_cluster']}: {d['size']:,} tracks; {d['top_genres']}")
    return "\n".join(lines) + "\n"


# --- 2. outliers ---
def discover_outliers(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    op, seed = params.discovery.outliers, params.discovery.seed
    tracks, is_test = load_tracks(paths, params)
    train = tracks.loc[~is_test].reset_index(drop=True)
    started = time.perf_counter()
    detector = OutlierDetector(
        features=params.discovery.features,
        contamination=op.contamination,
        n_estimators=op.n_estimators,
        hidden=op.ae_hidden,
        bottleneck=op.ae_bottleneck,
        epochs=op.ae_epochs,
        batch_size=op.ae_batch_size,
        learning_rate=op.ae_learning_rate,
        seed=seed,
    ).fit(train)
    log.info("outliers: IsolationForest and autoencoder fitted in %.1f s", time.perf_counter() - started)
    scores = detector.score_components(tracks)
    scores.insert(0, "track_id", tracks["track_id"].astype(str).to_numpy())
    holdout = _holdout_sample(tracks, is_test, op.eval_rows, seed)
    broken = shuffle_columns(holdout, raw_columns(params.discovery.features), seed)
    clean_parts, broken_parts = detector.score_components(holdout), detector.score_components(broken)
    auc = {
        name: synthetic_anomaly_auc(clean_parts[name].to_numpy(), broken_parts[name].to_numpy())
        for name in ("outlier_score", "isolation_score", "reconstruction_error")
    }
    # One row per song: the same recording under several track_ids would fill the list with repeats.
    distinct = scores.assign(_song=copy_groups(tracks)).sort_values("outlier_score", ascending=False)
    top = distinct.drop_duplicates("_song").head(op.top_n).drop(columns="_song")
    top_rows = tracks.set_index(tracks["track_id"].astype(str)).loc[top["track_id"]].reset_index(drop=True)
    reasons = detector.explain(top_rows)
    top_table = [
        {
            "track_id": str(row.track_id),
            "track_name": str(row.track_name),
            "artists": str(row.artists),
            "track_genre": str(row.track_genre),
            "outlier_score": float(s.outlier_score),
            "isolation_score": float(s.isolation_score),
            "reconstruction_error": float(s.reconstruction_error),
            "odd_features": why,
        }
        for row, s, why in zip(top_rows.itertuples(), top.itertuples(), reasons, strict=True)
    ]
    n_top = max(round(op.contamination * len(scores)), 1)
    top_if = set(scores.nlargest(n_top, "isolation_score")["track_id"])
    top_ae = set(scores.nlargest(n_top, "reconstruction_error")["track_id"])
    metrics = {
        "contamination": op.contamination,
        "threshold": detector.threshold_,
        "outlier_share_all": float(scores["is_outlier"].mean()),
        "outlier_share_train": float(scores.loc[~is_test, "is_outlier"].mean()),
        "outlier_share_holdout": float(scores.loc[is_test, "is_outlier"].mean()),
        "synthetic_anomaly_auc": auc["outlier_score"],
        "synthetic_anomaly_auc_isolation": auc["isolation_score"],
        "synthetic_anomaly_auc_autoencoder": auc["reconstruction_error"],
        "opinions_spearman": float(
            scores["isolation_score"].rank().corr(scores["reconstruction_error"].rank())
        ),
        "top_overlap_share": len(top_if & top_ae) / n_top,
        "autoencoder_final_loss": float(detector.loss_history_[-1]),
        "eval_rows": len(holdout),
        "seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_dir(paths.discovery_part("outliers")) as staging:
        save_model(detector, staging / "model.pkl")
        scores.to_parquet(staging / "scores.parquet", index=False)
        write_json(_r(top_table), staging / "top_outliers.json")
        write_json(_r({"loss_by_epoch": detector.loss_history_}), staging / "autoencoder.json")
        write_json(_r(metrics), staging / "metrics.json")
    write_text(_outliers_markdown(top_table, metrics), paths.discovery_reports / "outliers.md")
    log.info("outliers: %s", _r(metrics))
    return _r(metrics)


def _outliers_markdown(top: list[dict[str, Any]], metrics: dict[str, Any]) -> str:
    lines = [
        "# Outliers",
        "",
        f"outlier_score = mean of the robustly standardised IsolationForest score and log autoencoder "
        f"reconstruction error; is_outlier above the training quantile {1 - metrics['contamination']:.2f}. "
        f"Synthetic-anomaly ROC-AUC on held-out tracks vs their column-shuffled copies: combined "
        f"{metrics['synthetic_anomaly_auc']:.3f}, IsolationForest "
        f"{metrics['synthetic_anomaly_auc_isolation']:.3f}, autoencoder "
        f"{metrics['synthetic_anomaly_auc_autoencoder']:.3f}. The two opinions' rank correlation: "
        f"{metrics['opinions_spearman']:.3f}; overlap of their top {metrics['contamination']:.0%}: "
        f"{metrics['top_overlap_share']:.0%}.",
        "",
        "| # | track | artists | genres | score | what makes it odd (value, z; autoencoder expected) |",
        "|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(top, 1):
        odd = "; ".join(
            f"{f['feature']} {f['value']:g} (z {f['z']:+.1f}; exp. {f['expected']:.3g})"
            for f in row["odd_features"]
        )
        lines.append(
            f"| {rank} | {row['track_name'][:50]} | {row['artists'][:40]} | {row['track_genre']} "
            f"| {row['outlier_score']:.2f} | {odd} |"
        )
    return "\n".join(lines) + "\n"


# --- 3. similar tracks ---
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
    examples = _similar_examples(index, tracks, sp.k)
    with atomic_dir(paths.discovery_part("similar")) as staging:
        save_model(index, staging / "model.pkl")
        write_json(_r(metrics), staging / "metrics.json")
    write_text(examples, paths.discovery_reports / "similar_examples.md")
    log.info("similar: %s", _r(metrics))
    return _r(metrics)


def _similar_examples(index: SimilarityIndex, tracks: pd.DataFrame, k: int, n: int = 3) -> str:
    """Neighbours of the n most popular tracks: a quick look at what the index answers."""
    popular = tracks.nlargest(n, "popularity") if "popularity" in tracks else tracks.head(n)
    lines = ["# Similar tracks: examples", ""]
    for row in popular.itertuples():
        table = index.similar_to([str(row.track_id)], k)
        lines += [f"## {row.track_name} - {row.artists} ({row.track_genre})", ""]
        lines += [table.drop(columns=["query"]).to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines) + "\n"


# --- 4. playlists ---
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
        write_json(_r(by_seed), staging / "seed_playlists.json")
        write_json(_r(metrics), staging / "metrics.json")
    write_text("\n".join(report) + "\n", paths.discovery_reports / "playlists.md")
    log.info("playlists: %s", {k: v for k, v in _r(metrics).items() if k != "by_target"})
    return _r(metrics)


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


# --- 5. the 2-D map ---
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
    _save_figure(figure, paths.discovery_reports / "map.png")
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
        write_json(_r(metrics), staging / "metrics.json")
    return _r(metrics)


# --- 6. summary: metrics/discovery.json, reports/discovery/summary.md, one MLflow run ---
def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        out[prefix] = float(value)


def discover_summary(paths: ProjectPaths, params: Params, parent_run_id: str | None = None) -> dict[str, Any]:
    parts = {}
    for part in PARTS:
        source = paths.discovery_part(part) / "metrics.json"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: missing; run `trackflow discover --part {part}` first")
        parts[part] = read_json(source)
    scan = read_json(paths.discovery_part("clusters") / "k_scan.json")
    # Wall times are facts about the machine, not the models: they stay out of the metrics file, which two
    # runs on the same data, params and code write identically (they are in each part's own metrics.json).
    quality = {
        part: {k: v for k, v in values.items() if k not in TIMING_KEYS} for part, values in parts.items()
    }
    write_json({**quality, "k_scan": scan}, paths.discovery_metrics)
    summary_md = _summary_markdown(parts, scan)
    write_text(summary_md, paths.discovery_reports / "summary.md")
    client, experiment_id = mlflow_client(paths, params)
    run_id = registry.start_run(
        client,
        experiment_id,
        "discovery",
        parent_run_id,
        {"stage": "discovery", "params_hash": params_hash(params), "git_commit": git_commit(paths.root)},
    )
    flat: dict[str, float] = {}
    for part, values in parts.items():
        _flatten(part, {k: v for k, v in values.items() if k not in ("by_target",)}, flat)
    for i, target in enumerate(parts["playlists"].get("by_target", [])):
        _flatten(f"playlists_target{i}", {k: v for k, v in target.items() if k != "targets"}, flat)
    discovery = params.discovery
    registry.log_flat(
        client,
        run_id,
        params={
            "features": ",".join(discovery.features),
            "k": discovery.clusters.k,
            "k_range": ",".join(map(str, discovery.clusters.k_range)),
            "contamination": discovery.outliers.contamination,
            "genre_weight": discovery.similar.genre_weight,
            "seed": discovery.seed,
        },
        metrics=flat,
    )
    for row in scan:  # one series per measure, stepped by k: the MLflow UI plots the choice of k
        for name in ("silhouette_sample", "davies_bouldin", "inertia"):
            client.log_metric(run_id, f"kscan_{name}", float(row[name]), step=int(row["k"]))
    client.log_artifact(run_id, str(paths.discovery_metrics), "pipeline")
    if paths.discovery_reports.is_dir():
        client.log_artifacts(run_id, str(paths.discovery_reports), "reports")
    client.set_terminated(run_id, "FINISHED")
    return {"mlflow_run_id": run_id, "metrics_path": str(paths.discovery_metrics.relative_to(paths.root))}


def _summary_markdown(parts: dict[str, Any], scan: list[dict[str, Any]]) -> str:
    c, o, s, p, m = (parts[k] for k in PARTS)
    weights = "; ".join(
        f"genre weight {name.removeprefix('genre_weight_')}: genre {v['genre_agreement']:.3f}, artist "
        f"{v['artist_agreement']:.3f}"
        for name, v in s["by_genre_weight"].items()
    )
    lines = [
        "# Discovery: evaluation summary",
        "",
        "All models are fitted on the main protocol's training tracks; held-out = its test tracks.",
        "",
        "## Clusters",
        "",
        f"- KMeans k={c['k']}: purity {c['purity']:.3f} vs {c['random_purity']:.3f} for random clusters of "
        f"the same sizes; coverage {c['coverage']:.3f} vs {c['random_coverage']:.3f} (a track with several "
        "genres counts for each).",
        f"- silhouette {c['silhouette_sample']:.3f} on a seeded sample of {c['silhouette_sample_size']:,} "
        f"training tracks (silhouette is O(n^2)), {c['silhouette_holdout']:.3f} on held-out tracks; "
        f"Davies-Bouldin {c['davies_bouldin']:.3f} (all training tracks).",
        f"- best k by silhouette {c['best_silhouette_k']}, by Davies-Bouldin {c['best_davies_bouldin_k']}.",
        f"- HDBSCAN ({c['density_sample_size']:,}-track sample): {c['density_clusters']} density clusters, "
        "noise "
        f"{c['density_noise_share_sample']:.1%} of the sample; extended to all tracks, niche share "
        f"{c['niche_share']:.1%}.",
        "",
        "| k | silhouette (sample) | Davies-Bouldin |",
        "|---|---|---|",
        *[f"| {r['k']} | {r['silhouette_sample']:.4f} | {r['davies_bouldin']:.4f} |" for r in scan],
        "",
        "## Outliers",
        "",
        f"- flagged: {o['outlier_share_train']:.2%} of training tracks (contamination {o['contamination']}), "
        f"{o['outlier_share_holdout']:.2%} of held-out tracks.",
        f"- synthetic-anomaly ROC-AUC (held-out tracks vs their column-shuffled copies): combined "
        f"{o['synthetic_anomaly_auc']:.3f}, IsolationForest {o['synthetic_anomaly_auc_isolation']:.3f}, "
        f"autoencoder {o['synthetic_anomaly_auc_autoencoder']:.3f}.",
        f"- the two opinions: Spearman {o['opinions_spearman']:.3f}; top-{o['contamination']:.0%} overlap "
        f"{o['top_overlap_share']:.0%}.",
        "",
        "## Similar tracks",
        "",
        f"- k={s['k']}, {s['eval_queries']:,} held-out queries: genre agreement "
        f"{s['genre_agreement_at_k']:.3f} vs random {s['random_genre_agreement_at_k']:.3f}; artist agreement "
        f"{s['artist_agreement_at_k']:.3f} "
        f"vs random {s['random_artist_agreement_at_k']:.4f}.",
        f"- {weights}.",
        f"- one query after load: {s['query_ms']:.1f} ms (exact search over {s['catalogue_tracks']:,} "
        "tracks).",
        "",
        "## Playlists",
        "",
        f"- target requests: {p['target_share_within_all']:.1%} of tracks meet every target; mean |tempo "
        f"step| {p['target_mean_abs_tempo_step']:.1f} BPM ordered vs "
        f"{p['target_random_order_mean_abs_tempo_step']:.1f} in random order "
        f"({p['target_selection_order_mean_abs_tempo_step']:.1f} in selection order); Camelot "
        f"steps {p['target_mean_key_steps']:.2f} vs {p['target_random_order_mean_key_steps']:.2f}.",
        *[
            f"  - {' '.join(t['targets'])}: {t['share_within_all']:.0%} within all; per target "
            + ", ".join(f"{k} {v:.0%}" for k, v in t["share_within"].items())
            for t in p["by_target"]
        ],
        f"- seed requests ({p['seed_sets']} sets of held-out tracks of one genre): "
        f"{p['seed_share_sharing_seed_genre']:.1%} of tracks share a seed genre vs "
        f"{p['seed_random_share_sharing_seed_genre']:.1%} for random tracks; |tempo step| "
        f"{p['seed_mean_abs_tempo_step']:.1f} vs {p['seed_random_order_mean_abs_tempo_step']:.1f} BPM random "
        "order.",
        "",
        "## Map",
        "",
        f"- PCA explains {m['pca_explained_variance'][0]:.1%} + {m['pca_explained_variance'][1]:.1%}; "
        "t-SNE on "
        f"{m['tsne_sample']:,} sampled tracks; genres highlighted: {', '.join(m['highlighted_genres'])}.",
        "- ![map](map.png)",
    ]
    return "\n".join(lines) + "\n"


def discover(
    paths: ProjectPaths,
    params: Params,
    part: str | None = None,
    *,
    parts: Parts = SERIAL,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """One part, or every part then the summary (what `trackflow discover` runs): clusters, outliers and
    the similarity index side by side, then the map (it needs the clusters) beside the playlists (they need
    the index). Any part failing stops the stage."""
    runners: dict[str, Callable[[ProjectPaths, Params], dict[str, Any]]] = {
        "clusters": discover_clusters,
        "outliers": discover_outliers,
        "similar": discover_similar,
        "playlists": discover_playlists,
        "map": discover_map,
    }
    if part is not None:
        if part == "summary":
            return discover_summary(paths, params, parent_run_id)
        if part not in runners:
            raise DiscoveryInputError(
                f"unknown discovery part {part!r}; choose from {sorted([*runners, 'summary'])}"
            )
        return runners[part](paths, params)
    results: dict[str, Any] = {}
    for wave in (("clusters", "outliers", "similar"), ("map", "playlists")):
        outcomes = parts.map("discover", lambda name: runners[name](paths, params), wave)
        results.update(raise_first_failure(outcomes))
    results["summary"] = discover_summary(paths, params, parent_run_id)
    return results


# --- 7. registration ---
def gate_score(name: str, model: Any, holdout: pd.DataFrame, params: Params, challenger: Any) -> float:
    """The promotion metric of registered model `name` from a pyfunc-style `model.predict` on raw rows.
    clusters: silhouette of its labels in the challenger's space; outliers: synthetic-anomaly ROC-AUC;
    similar-tracks: held-out neighbour genre agreement at k."""
    # Every raw column: a logged model keeps those its signature names (an older champion may name others).
    inputs = model_inputs(holdout)
    if name == "clusters":
        labels = np.asarray(model.predict(inputs)["cluster"])
        return clusters_holdout_silhouette(challenger, labels, holdout)
    if name == "outliers":
        broken = shuffle_columns(inputs, raw_columns(params.discovery.features), params.discovery.seed)
        clean = np.asarray(model.predict(inputs)["outlier_score"], dtype="float64")
        odd = np.asarray(model.predict(broken)["outlier_score"], dtype="float64")
        return synthetic_anomaly_auc(clean, odd)
    table = model.predict(inputs, params={"k": params.discovery.similar.k, "genre_weight": 0.0})
    return table_genre_agreement(holdout, table)


def register_discovery(
    paths: ProjectPaths, params: Params, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Register clusters, outliers and similar-tracks: challenger always, champion when the gate passes."""
    import mlflow.pyfunc

    from components.discovery.pyfunc import (
        SimilarTracksModel,
        ensure_registered_model,
        log_and_register_pyfunc,
    )

    discovery = params.discovery
    tracks, is_test = load_tracks(paths, params)
    gate_rows = {
        "clusters": min(discovery.clusters.score_sample, 5000),
        "outliers": discovery.outliers.eval_rows,
        "similar-tracks": min(discovery.similar.eval_queries, 2000),
    }
    client, experiment_id = mlflow_client(paths, params)
    data_hash = read_json(paths.ingest_meta)["content_hash"] if paths.ingest_meta.is_file() else "unknown"
    metrics = read_json(paths.discovery_metrics) if paths.discovery_metrics.is_file() else {}
    results = {}
    for name, part in REGISTERED.items():
        fitted = load_model(paths, part)
        holdout = _holdout_sample(tracks, is_test, gate_rows[name], discovery.seed)
        model = SimilarTracksModel(fitted, discovery.similar.k) if name == "similar-tracks" else fitted
        scorer = _PyfuncLike(model) if name == "similar-tracks" else fitted
        challenger_score = gate_score(name, scorer, holdout, params, fitted if name == "clusters" else None)
        gate = GATE_METRICS[name]
        tags = {
            "model": name,
            "data_hash": data_hash,
            "params_hash": params_hash(params),
            "git_commit": git_commit(paths.root),
            "protocol": params.split.protocol,
            f"holdout_{gate}": f"{challenger_score:.4f}",
        }
        run_id = registry.start_run(
            client, experiment_id, f"register-{name}", parent_run_id, {"stage": "register", **tags}
        )
        flat: dict[str, float] = {}
        _flatten("", {k: v for k, v in metrics.get(part, {}).items() if k != "by_genre_weight"}, flat)
        registry.log_flat(client, run_id, metrics={**flat, f"gate_{gate}": challenger_score})
        champion = registry.champion_version(client, name)
        champion_score, unscorable = None, None
        if champion is not None:
            try:
                loaded = mlflow.pyfunc.load_model(f"models:/{name}@{registry.CHAMPION}")
                champion_score = gate_score(
                    name, _Conformed(loaded), holdout, params, fitted if name == "clusters" else None
                )
                registry.log_flat(client, run_id, metrics={f"champion_{gate}": champion_score})
            except Exception as exc:  # a champion that cannot answer today's rows: a person decides
                unscorable = f"{type(exc).__name__}: {exc}"[:300]
                log.error("champion %s v%s could not be evaluated: %s", name, champion.version, unscorable)
        if unscorable is not None:
            decision = registry.PromotionDecision(
                False,
                f"champion kept: it could not be evaluated on today's holdout ({unscorable}); "
                "promote by hand",
                challenger_score,
                None,
            )
        else:
            decision = registry.decide_promotion(
                challenger_score, champion_score, discovery.promotion_margin.get(name, 0.0), gate, False
            )
        example = model_inputs(holdout.head(5), INPUT_COLUMNS[name])
        if name == "similar-tracks":
            version, uri = log_and_register_pyfunc(client, run_id, model, example, name, tags)
        else:
            ensure_registered_model(client, name)
            version, uri = registry.log_and_register(client, run_id, fitted, example, name, tags)
        aliases = registry.apply_aliases(client, name, version, decision)
        client.set_tag(run_id, "promotion_decision", decision.reason)
        client.set_terminated(run_id, "FINISHED")
        results[name] = {
            "version": version,
            "model_uri": uri,
            "run_id": run_id,
            "aliases": aliases,
            "gate_metric": gate,
            "challenger_score": challenger_score,
            "champion_score": champion_score,
            "promotion": decision.reason,
        }
        log.info("registered %s v%s %s: %s", name, version, aliases, decision.reason)
    write_json(_r(results, 6), paths.discovery_registration)
    return _r(results, 6)


class _PyfuncLike:
    """Calls a PythonModel the way a loaded pyfunc is called (no context), for the challenger's gate."""

    def __init__(self, model: Any):
        self.model = model

    def predict(self, rows: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.model.predict(None, rows, params)


class _Conformed:
    """A loaded champion pyfunc, fed rows cast to its own signature's types (an older schema still scores)."""

    def __init__(self, model: Any):
        self.model = model

    def predict(self, rows: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows = registry.conform_to_signature(rows, self.model)
        return self.model.predict(rows, params=params) if params else self.model.predict(rows)


# --- 8. queries (`trackflow similar`, `trackflow playlist`): the saved index, not MLflow, for speed ---
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


def find_similar(
    paths: ProjectPaths,
    params: Params,
    query: str,
    k: int | None = None,
    genre_weight: float | None = None,
) -> dict[str, Any]:
    """Neighbours of a catalogue track (by track_id) or of an audio file, with load and query times."""
    tick = time.perf_counter()
    index: SimilarityIndex = load_model(paths, "similar")
    load_ms = 1000 * (time.perf_counter() - tick)
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
) -> dict[str, Any]:
    """A playlist from seed track ids or from target preferences (not both), ordered for transitions."""
    if bool(seeds) == bool(targets):
        raise DiscoveryInputError("give seed tracks (--seed) or target preferences (--target), not both")
    pp = params.discovery.playlist
    n = pp.n if n is None else n
    if n < 2:
        raise DiscoveryInputError(f"a playlist needs at least 2 tracks, got n={n}")
    tick = time.perf_counter()
    index: SimilarityIndex = load_model(paths, "similar")
    load_ms = 1000 * (time.perf_counter() - tick)
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
