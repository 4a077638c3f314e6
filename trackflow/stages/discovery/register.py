"""The register-discovery stage: clusters, outliers and similar-tracks behind the champion gate
(trackflow/tracking.py), each judged on held-out rows through its pyfunc, as scoring calls it."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from components.discovery.outliers import shuffle_columns, synthetic_anomaly_auc
from components.discovery.pyfunc import DESCRIPTIONS, SimilarTracksModel
from components.discovery.similarity import table_genre_agreement
from components.discovery.space import raw_columns
from components.io import read_json, write_json
from components.params import Params
from components.schema import model_inputs
from components.scoring import conform_to_signature
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, params_hash
from trackflow.stages.discovery.common import (
    GATE_METRICS,
    INPUT_COLUMNS,
    REGISTERED,
    clusters_holdout_silhouette,
    holdout_sample,
    load_model,
    load_tracks,
    log,
    round_floats,
)
from trackflow.stages.discovery.summary import flatten_metrics
from trackflow.tracking import Gate, Tracker, register_behind_gate


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
    discovery = params.discovery
    tracks, is_test = load_tracks(paths, params)
    gate_rows = {
        "clusters": min(discovery.clusters.score_sample, 5000),
        "outliers": discovery.outliers.eval_rows,
        "similar-tracks": min(discovery.similar.eval_queries, 2000),
    }
    tracker = Tracker.for_project(paths, params)
    data_hash = read_json(paths.ingest_meta)["content_hash"] if paths.ingest_meta.is_file() else "unknown"
    metrics = read_json(paths.discovery_metrics) if paths.discovery_metrics.is_file() else {}
    results = {}
    for name, part in REGISTERED.items():
        fitted = load_model(paths, part)
        holdout = holdout_sample(tracks, is_test, gate_rows[name], discovery.seed)
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
        with tracker.run(f"register-{name}", parent_run_id, {"stage": "register", **tags}) as run:
            flat: dict[str, float] = {}
            flatten_metrics(
                "", {k: v for k, v in metrics.get(part, {}).items() if k != "by_genre_weight"}, flat
            )
            tracker.log(run.id, metrics={**flat, f"gate_{gate}": challenger_score})

            pyfunc = name == "similar-tracks"
            clusterer = fitted if name == "clusters" else None
            registered = register_behind_gate(
                tracker,
                run.id,
                name=name,
                description=DESCRIPTIONS[name],
                model=model,
                input_example=model_inputs(holdout.head(5), INPUT_COLUMNS[name]),
                tags=tags,
                gate=Gate(gate, False, discovery.promotion_margin[name]),
                challenger_score=challenger_score,
                score_champion=partial(_score_champion, name, holdout, params, clusterer),
                flavour="pyfunc" if pyfunc else "sklearn",
                signature_params={"k": int(model.k), "genre_weight": float(fitted.genre_weight)}
                if pyfunc
                else None,
            )
        results[name] = {
            key: registered[key]
            for key in ("version", "model_uri", "run_id", "aliases", "gate_metric", "challenger_score")
        } | {"champion_score": registered["champion_score"], "promotion": registered["promotion"]}
        log.info(
            "registered %s v%s %s: %s",
            name,
            registered["version"],
            registered["aliases"],
            registered["promotion"],
        )
    write_json(round_floats(results, 6), paths.discovery_registration)
    return round_floats(results, 6)


def _score_champion(name: str, holdout: pd.DataFrame, params: Params, clusterer: Any, champion: Any) -> float:
    """The gate metric of a loaded champion pyfunc on the same held-out rows as its challenger."""
    return gate_score(name, _Conformed(champion), holdout, params, clusterer)


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
        rows = conform_to_signature(rows, self.model)
        return self.model.predict(rows, params=params) if params else self.model.predict(rows)
