"""The discover stage: one part, or every part side by side as far as they allow, then the summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.discovery.space import DiscoveryInputError
from components.params import Params
from trackflow.parts import SERIAL, Parts, raise_first_failure
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.clusters import discover_clusters
from trackflow.stages.discovery.outliers import discover_outliers
from trackflow.stages.discovery.playlists import discover_playlists
from trackflow.stages.discovery.projection import discover_map
from trackflow.stages.discovery.similar import discover_similar
from trackflow.stages.discovery.summary import discover_summary


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
