"""The 2-D map: PCA of every track, t-SNE of a seeded sample, coloured by cluster and by genre."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE


def pca_2d(Z_fit: np.ndarray, Z_all: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on `Z_fit` (training tracks), applied to `Z_all`; returns coordinates and the explained
    variance ratio of the two components."""
    pca = PCA(n_components=2, random_state=seed).fit(Z_fit)
    return pca.transform(Z_all), pca.explained_variance_ratio_


def tsne_2d(Z: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    perplexity = min(perplexity, max((len(Z) - 1) / 3, 1.0))  # t-SNE needs perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(
        Z
    )


def highlight_genres(labels: np.ndarray, primary_genres: Sequence[str], n: int) -> list[str]:
    """The n genres most concentrated in a single cluster (share of the genre's tracks in its best cluster):
    the genres the map can actually separate. Ties broken by name."""
    frame = pd.DataFrame({"cluster": np.asarray(labels), "genre": list(primary_genres)})
    frame = frame[frame["genre"] != ""]
    concentration = frame.groupby("genre")["cluster"].agg(lambda c: c.value_counts(normalize=True).iloc[0])
    ranked = concentration.reset_index().sort_values(["cluster", "genre"], ascending=[False, True])
    return ranked["genre"].head(n).tolist()


def _scatter(
    ax: Any,
    xy: np.ndarray,
    colour_keys: Sequence,
    palette: dict,
    title: str,
    legend_title: str,
    size: float,
    seed: int,
) -> None:
    keys = np.asarray(colour_keys, dtype=object)
    background = np.array([k not in palette for k in keys])
    if background.any():
        ax.scatter(xy[background, 0], xy[background, 1], s=size * 0.6, c="#c8c8c8", alpha=0.35, linewidths=0)
    # One call in a shuffled order: no group is painted over all the others just for coming last.
    shown = np.random.default_rng(seed).permutation(np.flatnonzero(~background))
    colours = [palette[k] for k in keys[shown]]
    ax.scatter(xy[shown, 0], xy[shown, 1], s=size, c=colours, alpha=0.75, linewidths=0)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=str(k)) for k, c in palette.items()]
    ax.legend(handles=handles, title=legend_title, fontsize=7, title_fontsize=7, loc="best", ncol=2)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def map_figure(
    pca_xy: np.ndarray,
    pca_clusters: np.ndarray,
    pca_genres: Sequence[str],
    tsne_xy: np.ndarray,
    tsne_clusters: np.ndarray,
    tsne_genres: Sequence[str],
    cluster_names: dict[int, str],
    genres: Sequence[str],
    variance: Sequence[float],
    seed: int = 0,
) -> Figure:
    """PCA and t-SNE, each coloured by cluster and by the highlighted genres, cluster names underneath."""
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]
    # The strong colours of tab20 first, the light ones only past ten clusters.
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    cluster_palette = {c: tab20(order[i % 20]) for i, c in enumerate(sorted(cluster_names))}
    genre_palette = {g: matplotlib.colormaps["tab10"](i % 10) for i, g in enumerate(genres)}
    figure = Figure(figsize=(15, 15))
    grid = figure.add_gridspec(3, 2, height_ratios=(1, 1, 0.22))
    pve = f"{variance[0]:.0%} + {variance[1]:.0%} of variance"
    n = len(tsne_xy)
    panels = (
        (0, 0, pca_xy, pca_clusters, cluster_palette, f"PCA, all tracks ({pve}): cluster", "cluster", 1.5),
        (0, 1, pca_xy, pca_genres, genre_palette, "PCA: primary genre (others grey)", "genre", 1.5),
        (
            1,
            0,
            tsne_xy,
            tsne_clusters,
            cluster_palette,
            f"t-SNE, {n:,} sampled tracks: cluster",
            "cluster",
            7,
        ),
        (1, 1, tsne_xy, tsne_genres, genre_palette, "t-SNE: primary genre (others grey)", "genre", 7),
    )
    for row, col, xy, keys, palette, title, legend, size in panels:
        _scatter(figure.add_subplot(grid[row, col]), xy, keys, palette, title, legend, size, seed)
    names = figure.add_subplot(grid[2, :])
    names.axis("off")
    lines = [f"{c}: {name}" for c, name in sorted(cluster_names.items())]
    half = (len(lines) + 1) // 2
    for column, chunk in enumerate((lines[:half], lines[half:])):
        names.text(0.5 * column, 1.0, "\n".join(chunk), va="top", ha="left", fontsize=9, family="monospace")
    figure.suptitle(
        "Audio-feature map. Genres shown: the 10 most concentrated in a single cluster.", fontsize=11
    )
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    return figure
