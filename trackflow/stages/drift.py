"""Drift monitoring: a scored batch and its predictions against the champions' training rows (Evidently),
with the report, an MLflow run and the retraining decision, which also weighs the labels that came back
since the champions were trained (trackflow/stages/performance.py)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from components.drift import (
    DriftResult,
    drift_report,
)
from components.io import read_json, write_json, write_parquet, write_text
from components.params import Params
from components.performance import retrain_decision
from components.schema import ROW_NUMBER
from components.scoring import GENRE, PREDICTION_COLUMNS, Champion, score_rows
from components.split import split_frames
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, params_hash
from trackflow.stages.performance import new_label_files, performance_check
from trackflow.stages.scoring import ScoringError, load_champions, log, source_rows
from trackflow.tracking import Tracker


def _sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_index()


def reference_rows(paths: ProjectPaths, params: Params, side: str = "train") -> pd.DataFrame:
    """The champion's training rows (`side="train"`: the main protocol's train split of the per-track table)
    or its holdout rows (`side="test"`)."""
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    train, test = split_frames(tracks, splits, params.split.protocol)
    return train if side == "train" else test


def holdout_predictions(
    paths: ProjectPaths, params: Params, champions: dict[str, Champion], genre_given: bool = False
) -> pd.DataFrame:
    """The champions' predictions on the holdout rows (out of sample, as on a new batch): the reference of
    prediction drift, scored as the batch was (with the holdout's own genre when the batch gave its genre,
    with the genre champion's guess otherwise). Cached per data, protocol, champion versions and that."""
    data_hash = read_json(paths.ingest_meta)["content_hash"][:12]
    versions = "-".join(f"{t}{c.version}" for t, c in sorted(champions.items()))
    genre = "given" if genre_given else "predicted"
    name = f"holdout-{data_hash}-{params.split.protocol}-{versions}-genre-{genre}.parquet"
    cache = paths.drift_reference_dir / name
    if cache.exists():
        return pd.read_parquet(cache)
    holdout = _sample(reference_rows(paths, params, "test"), params.drift.max_rows, params.drift.seed)
    if not genre_given:
        holdout = holdout.drop(columns=[GENRE])
    log.info("scoring %s holdout rows with the champions (cached in %s)", f"{len(holdout):,}", cache)
    predictions = score_rows(holdout, champions, pd.Timestamp.now("UTC"))
    columns = [PREDICTION_COLUMNS[t] for t in champions if t in PREDICTION_COLUMNS]
    frame = predictions[columns + (["is_outlier"] if "is_outlier" in predictions else [])]
    write_parquet(frame, cache)
    return frame


def latest_scored_batch(paths: ProjectPaths) -> str:
    summaries = sorted((paths.root / "data" / "predictions").glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        raise ScoringError("no scored batch: run batch scoring (`trackflow score`) first")
    return summaries[-1].stem


def batch_with_predictions(paths: ProjectPaths, params: Params, name: str) -> pd.DataFrame:
    """A scored batch's valid rows joined with their predictions (by source row)."""
    # A batch larger than drift.max_rows is sampled chunk by chunk (seeded), so it never sits whole in memory.
    rows = source_rows(paths, params, name, "drift", params.drift.max_rows, params.drift.seed)
    predictions = pd.read_parquet(paths.predictions(name))
    wanted = (*PREDICTION_COLUMNS.values(), "is_outlier")
    columns = [ROW_NUMBER, *(c for c in wanted if c in predictions)]
    return rows.merge(predictions[columns], on=ROW_NUMBER, how="inner", validate="one_to_one")


def _retrain_reason(name: str, result: DriftResult, params: Params) -> str:
    scores = ", ".join(f"{c.column} {c.method} {c.score:.3f}" for c in result.features if c.drifted)
    return (
        f"drift on batch {name}: {len(result.drifted_columns)} of {len(result.features)} input columns "
        f"drifted (share {result.drift_share:.2f} >= drift.retrain_share {params.drift.retrain_share:g}): "
        f"{scores}"
    )


def drift_check(
    paths: ProjectPaths, params: Params, batch: str | None = None, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Drift of a scored batch (default: the latest) and its predictions against the champion's training
    data: HTML report and JSON summary under reports/drift/, both logged to MLflow. With labels newer than
    the champions, their realised error too (the performance monitor). The summary says whether retraining
    is due (`retrain`), why (`retrain_reason`) and the decision in words (`decision`: "drift, no new
    labels" when drift alone would refit the same rows); the flow acts on it."""
    name = batch or latest_scored_batch(paths)
    champions = load_champions(paths, params)
    started = time.perf_counter()
    current = batch_with_predictions(paths, params, name)
    reference = _sample(reference_rows(paths, params), params.drift.max_rows, params.drift.seed)
    # The batch's majority condition: most rows scored with a given genre, or with a guessed one.
    inputs = read_json(paths.predictions_summary(name)).get("genre_input", {})
    genre_given = inputs.get("given", 0) * 2 > sum(inputs.values())
    holdout = holdout_predictions(paths, params, champions, genre_given)
    result = drift_report(
        reference, current, prediction_reference=holdout, drift_share=params.drift.drift_share
    )
    # The outlier model's flag rate on the batch beside its rate on the holdout: a jump means odd or broken
    # tracks (bad metadata, silence, clips) rather than a shift in taste.
    outliers = {}
    if "is_outlier" in current and "is_outlier" in holdout:
        outliers = {
            "outlier_share": float(current["is_outlier"].mean()),
            "reference_outlier_share": float(holdout["is_outlier"].mean()),
        }
    drift_due = result.drift_share >= params.drift.retrain_share
    tracker = Tracker.for_project(paths, params)
    fresh = new_label_files(paths, params, tracker)
    performance = performance_check(paths, params, fresh[-1][0], parent_run_id) if fresh else None
    decision = retrain_decision(
        _retrain_reason(name, result, params) if drift_due else None,
        len(fresh),
        performance["degraded"] if performance else [],
    )
    retrain = decision.retrain
    seconds = time.perf_counter() - started
    summary = {
        "batch": name,
        **result.summary(),
        "dataset_drift": result.drift_share >= params.drift.drift_share,
        **outliers,
        "retrain_share": params.drift.retrain_share,
        "drift_due": drift_due,
        "new_label_files": [path.name for path, _ in fresh],
        "performance": performance,
        "retrain": retrain,
        "retrain_reason": decision.reason,
        "decision": decision.decision,
        "champions": {t: c.version for t, c in champions.items()},
        "seconds": round(seconds, 3),
        "report_path": str(paths.drift_report(name)),
    }
    write_text(result.html, paths.drift_report(name))
    predictions_report = paths.drift_report(name).with_suffix(".predictions.html")
    if result.predictions_html is not None:
        write_text(result.predictions_html, predictions_report)
        summary["predictions_report_path"] = str(predictions_report)
    write_json(summary, paths.drift_summary(name))

    tags = {
        "stage": "drift",
        "batch": name,
        "params_hash": params_hash(params),
        "git_commit": git_commit(paths.root),
        "drift_detected": str(result.drift_detected),
        "retrain": str(retrain),
        "retrain_decision": decision.decision[:5000],
    }
    with tracker.run(f"drift-{name}", parent_run_id, tags) as run:
        metrics = {"drift_share": result.drift_share, "drifted_columns": float(len(result.drifted_columns))}
        metrics |= outliers
        metrics |= {f"drift_score_{c.column}": c.score for c in (*result.features, *result.predictions)}
        tracker.log(run.id, params={"batch": name, "rows": len(current)}, metrics=metrics)
        tracker.client.log_artifact(run.id, str(paths.drift_report(name)), "drift")
        tracker.client.log_artifact(run.id, str(paths.drift_summary(name)), "drift")
        if result.predictions_html is not None:
            tracker.client.log_artifact(run.id, str(predictions_report), "drift")
    run_id = run.id
    summary["mlflow_run_id"] = run_id
    log.info(
        "%s: drift share %.2f (%s), prediction drift %s, %.1f s; %s",
        name,
        result.drift_share,
        ", ".join(result.drifted_columns) or "no column drifted",
        summary["drifted_predictions"] or "none",
        seconds,
        decision.decision,
    )
    return summary
