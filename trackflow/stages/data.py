"""The data stages: fetch the raw file, ingest it, the validation gate, the per-track table, the grouped
holdouts; and the feature ablation, run on demand (`trackflow ablation`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.baseline import fit_baseline, predict_baseline
from components.evaluation import album_shared, binary_metrics, regression_metrics
from components.ingest import ingest_csv
from components.io import read_json, write_json, write_parquet, write_text
from components.labels import merge_labels
from components.params import Params
from components.schema import PROTOCOLS, TARGET
from components.split import make_splits, split_frames
from components.tracks import collapse_to_tracks
from components.validation import DataValidationError, validate_tracks
from trackflow import acquire
from trackflow.config import load_suite
from trackflow.paths import ProjectPaths
from trackflow.stages.common import log
from trackflow.stages.labels import read_labels
from trackflow.tracking import Tracker


def fetch_data(paths: ProjectPaths, params: Params, tracks_csv: str | None = None) -> dict[str, Any]:
    local = tracks_csv if tracks_csv is not None else os.environ.get(acquire.TRACKS_CSV_ENV)
    result = acquire.acquire_dataset(
        paths.raw_csv,
        local_source=Path(local).expanduser().resolve() if local else None,
        url=params.fetch.url,
        timeout_s=params.fetch.timeout_s,
        expected_sha256=params.fetch.expected_sha256,
    )
    summary = {
        "path": str(paths.raw_csv.relative_to(paths.root)),
        "source": result.source,
        "sha256": result.sha256,
        "size_bytes": result.size_bytes,
        "matches_published_sha256": result.matches_expected,
    }
    if result.matches_expected is False:
        log.warning("raw file differs from the published dataset.csv (sha256 %s)", result.sha256)
    write_json(summary, paths.raw_meta)
    return summary


def ingest(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    if not paths.raw_csv.is_file():
        raise FileNotFoundError(f"{paths.raw_csv}: no raw data; run `trackflow fetch-data` (make data) first")
    result = ingest_csv(paths.raw_csv)
    write_parquet(result.frame, paths.interim_tracks)
    summary = {
        "rows": result.rows,
        "content_hash": result.content_hash,
        "columns_in_file": result.columns_in_file,
        "unparseable_values": result.unparseable_values,
    }
    write_json(summary, paths.ingest_meta)
    return summary


def _log_validation(
    paths: ProjectPaths,
    params: Params,
    summary: dict[str, Any],
    report: Path | None,
    parent_run_id: str | None,
    passed: bool,
) -> str:
    tracker = Tracker.for_project(paths, params)
    with tracker.run("validate", parent_run_id, {"stage": "validate"}) as run:
        numeric = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        tracker.log(run.id, metrics=numeric)
        if report is not None:
            tracker.client.log_artifact(run.id, str(report), "validation")
        # A rejected batch is a failed validation run, with its report: the gate did its job.
        run.status = "FINISHED" if passed else "FAILED"
    return run.id


def validate(paths: ProjectPaths, params: Params, parent_run_id: str | None = None) -> dict[str, Any]:
    frame = pd.read_parquet(paths.interim_tracks)
    meta = read_json(paths.ingest_meta)
    suite = load_suite(paths.expectation_suite)
    report = paths.reports / "validation" / "report.html"
    try:
        outcome = validate_tracks(frame, suite, params.validation, columns_in_file=meta["columns_in_file"])
    except DataValidationError as exc:
        # A rejected batch still gets its report and its MLflow run, so the user sees every failed
        # expectation; no output of this or any later stage is touched.
        if exc.report_html:
            write_text(exc.report_html, report)
        summary = {"rows_in": len(frame), "rejected": 1, **(exc.summary or {})}
        _log_validation(paths, params, summary, report if exc.report_html else None, parent_run_id, False)
        raise
    write_text(outcome.report_html, report)
    # Always written (possibly empty) so that DVC can track it as an output.
    quarantine = paths.quarantine_dir / "quarantined.parquet"
    write_parquet(outcome.quarantined, quarantine)
    if len(outcome.quarantined):
        log.warning("%d rows quarantined to %s", len(outcome.quarantined), quarantine)
    write_parquet(outcome.valid, paths.validated_tracks)
    summary = {**outcome.summary, "quarantine_file": str(quarantine.relative_to(paths.root))}
    summary["mlflow_run_id"] = _log_validation(paths, params, outcome.summary, report, parent_run_id, True)
    write_json(summary, paths.validation_summary)
    return summary


def featurize(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    listings = pd.read_parquet(paths.validated_tracks)
    # The labels folder is a dependency of this stage: a project that lost it gets it back, empty.
    paths.labels_dir.mkdir(parents=True, exist_ok=True)
    labelled = read_labels(paths, params)
    listings, merged = merge_labels(listings, labelled)
    tracks, report = collapse_to_tracks(listings, params.featurize.popularity_reconcile)
    write_parquet(tracks, paths.features)
    summary = {**report.as_dict(), "labels": merged.as_dict()}
    if merged.labelled_tracks:
        log.info(
            "labels: %d track(s) from %d file(s), %d new, %d replacing the dataset's",
            merged.labelled_tracks,
            merged.label_files,
            merged.new_tracks,
            merged.replaced_tracks,
        )
    write_json(summary, paths.featurize_meta)
    return summary


def split(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    tracks = pd.read_parquet(paths.features)
    splits = make_splits(tracks, params.split.test_size, params.split.seed)
    write_parquet(splits, paths.splits)
    return {protocol: splits[f"split_{protocol}"].value_counts().to_dict() for protocol in PROTOCOLS}


def ablation(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    """Add the groups of `ablation.groups` one at a time and report the fixed LightGBM's holdout metrics
    under both protocols, for popularity (regression) and hit (popularity >= train.hit_threshold): with the
    genre given, and with `ablation.without_genre` the same order without the genre group, the inputs of the
    genre-free fallback that answers a row scored without one."""
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    order = params.ablation.groups
    conditions = {"given": order}
    if params.ablation.without_genre and "genre" in order:
        conditions["no_genre"] = tuple(g for g in order if g != "genre")
    fitted: dict[tuple[str, ...], dict[str, Any]] = {}  # a prefix without the genre is fitted once
    rows = []
    for condition, groups_order in conditions.items():
        for depth in range(1, len(groups_order) + 1):
            groups = groups_order[:depth]
            if groups not in fitted:
                fitted[groups] = _ablation_row(tracks, splits, params, groups)
                log.info("ablation %s: %s", "+".join(groups), fitted[groups])
            rows.append({"condition": condition, "groups": "+".join(groups), **fitted[groups]})
    shared_tracks = rows[0]["album_shared_tracks"] if rows else 0
    lines = [
        "# Feature ablation: the fixed LightGBM (`ablation.lightgbm`) on popularity and hit",
        "",
        "Groups added one at a time; holdouts grouped by primary artist and by track "
        f"(seed {params.split.seed}). The artist holdout also on its album subsets: "
        f"{shared_tracks:,} of its tracks share an album name with a training track (album-shared), the "
        "others are album-unseen.",
    ]
    titles = {
        "given": "The genre given",
        "no_genre": "Without a genre: the groups a genre-free fallback reads (a row scored without one)",
    }
    for condition in conditions:
        chosen = [r for r in rows if r["condition"] == condition]
        lines += ["", f"## {titles[condition]}", ""]
        lines += _ablation_table(chosen, "popularity", ("rmse", "r2"), "RMSE / R²")
        lines += ["", *_ablation_table(chosen, "hit", ("roc_auc", "pr_auc"), "ROC-AUC / PR-AUC")]
    write_text("\n".join(lines) + "\n", paths.reports / "ablation.md")
    write_json(pd.DataFrame(rows).to_dict(orient="records"), paths.reports / "ablation.json")
    return {"rows": rows}


def _ablation_row(
    tracks: pd.DataFrame, splits: pd.DataFrame, params: Params, groups: tuple[str, ...]
) -> dict[str, Any]:
    """The fixed LightGBM on these groups: `<task>_<view>_<metric>` for both tasks and every holdout view."""
    row: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        train_rows, test_rows = split_frames(tracks, splits, protocol)
        shared = album_shared(test_rows["album_name"], train_rows["album_name"])
        views = {protocol: np.ones(len(test_rows), dtype=bool)}
        if protocol == "artist":
            # The artist holdout's album subsets (components/evaluation.py album_shared).
            views.update(album_unseen=~shared, album_shared=shared)
            row["album_shared_tracks"] = int(shared.sum())
        popularity = test_rows[TARGET].to_numpy("float64")
        for task, threshold in (("popularity", None), ("hit", params.train.hit_threshold)):
            model = fit_baseline(
                train_rows,
                params.ablation.lightgbm,
                params.train.seed,
                groups,
                params.train.names.settings(),
                params.train.artist_mask_share,
                hit_threshold=threshold,
            )
            predicted = predict_baseline(model, test_rows)
            for view, mask in views.items():
                row.update(_ablation_metrics(task, view, popularity[mask], predicted[mask], threshold))
    return row


_ABLATION_VIEWS = ("artist", "album_unseen", "album_shared", "track")


def _ablation_metrics(
    task: str, view: str, popularity: np.ndarray, predicted: np.ndarray, threshold: float | None
) -> dict[str, float]:
    """`<task>_<view>_<metric>` of one holdout view; NaN where the view is too small or one-class."""
    if threshold is None:
        metrics = regression_metrics(popularity, predicted) if len(popularity) >= 2 else {}
        keys: tuple[str, ...] = ("rmse", "mae", "r2")
    else:
        hits = (popularity >= threshold).astype("int64")
        defined = len(np.unique(hits)) == 2
        metrics = binary_metrics(hits, predicted, min_precision=0.5) if defined else {}
        keys = ("roc_auc", "pr_auc")
    return {f"{task}_{view}_{k}": float(metrics.get(k, float("nan"))) for k in keys}


def _ablation_table(rows: list[dict[str, Any]], task: str, metrics: tuple[str, str], label: str) -> list[str]:
    names = {
        "artist": "artist",
        "album_unseen": "album-unseen",
        "album_shared": "album-shared",
        "track": "track",
    }
    header = "| feature groups | " + " | ".join(f"{task} {names[v]} {label}" for v in _ABLATION_VIEWS) + " |"
    lines = [header, "|---" * (len(_ABLATION_VIEWS) + 1) + "|"]
    for r in rows:
        cells = [" / ".join(f"{r[f'{task}_{v}_{m}']:.3f}" for m in metrics) for v in _ABLATION_VIEWS]
        lines.append(f"| {r['groups']} | " + " | ".join(cells) + " |")
    return lines
