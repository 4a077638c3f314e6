"""Renderers of the discovery report: markdown of the clusters, outliers, similar-track examples and the
summary, as pure functions of the parts' metrics and tables."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from components.discovery import PARTS
from components.discovery.similarity import SimilarityIndex


def clusters_markdown(
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


def outliers_markdown(top: list[dict[str, Any]], metrics: dict[str, Any]) -> str:
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


def similar_examples_markdown(index: SimilarityIndex, tracks: pd.DataFrame, k: int, n: int = 3) -> str:
    """Neighbours of the n most popular tracks: a quick look at what the index answers."""
    popular = tracks.nlargest(n, "popularity") if "popularity" in tracks else tracks.head(n)
    lines = ["# Similar tracks: examples", ""]
    for row in popular.itertuples():
        table = index.similar_to([str(row.track_id)], k)
        lines += [f"## {row.track_name} - {row.artists} ({row.track_genre})", ""]
        lines += [table.drop(columns=["query"]).to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines) + "\n"


def summary_markdown(parts: dict[str, Any], scan: list[dict[str, Any]]) -> str:
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


def k_scan_figure(scan: pd.DataFrame, k: int) -> Figure:
    """Silhouette and Davies-Bouldin for every k of the scan, the chosen k marked."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(scan["k"], scan["silhouette_sample"], "o-")
    axes[0].set(xlabel="k", ylabel="silhouette (seeded sample)", title="Silhouette (higher is better)")
    axes[1].plot(scan["k"], scan["davies_bouldin"], "o-", color="darkorange")
    axes[1].set(xlabel="k", ylabel="Davies-Bouldin", title="Davies-Bouldin (lower is better)")
    for ax in axes:
        ax.axvline(k, color="grey", ls="--", lw=1)
    figure.tight_layout()
    return figure
