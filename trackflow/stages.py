"""The pipeline's stages: each reads its inputs from files, calls the pure components, writes its outputs
atomically and returns a small JSON-serialisable summary. The Prefect tasks (flows/) and the CLI commands
that dvc.yaml runs both call these functions: one implementation, two runners."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows
import matplotlib.pyplot as plt
import mlflow.sklearn
import numpy as np
import pandas as pd

from components import acquire, registry
from components.evaluation import regression_metrics
from components.ingest import ingest_csv
from components.io import atomic_dir, atomic_path, read_json, write_json, write_parquet, write_text
from components.modeling import fit_popularity_model, model_inputs, predict_popularity
from components.params import Params, load_params
from components.schema import TARGET
from components.split import make_splits, split_frames
from components.tracks import collapse_to_tracks
from components.validation import DataValidationError, load_suite, validate_tracks
from mlflow import MlflowClient
from trackflow.paths import ProjectPaths

log = logging.getLogger("trackflow")
PROTOCOLS = ("artist", "track")


def params_for(paths: ProjectPaths) -> Params:
    return load_params(paths.params)


def params_hash(params: Params) -> str:
    blob = json.dumps(params.model_dump(by_alias=True, mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit(root: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def mlflow_client(paths: ProjectPaths, params: Params) -> tuple[MlflowClient, str]:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or registry.resolve_tracking_uri(
        params.mlflow.tracking_uri, paths.root
    )
    mlflow.set_tracking_uri(uri)  # log_model resolves the store globally
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = registry.ensure_experiment(
        client, params.mlflow.experiment, paths.root / params.mlflow.artifact_root
    )
    return client, experiment_id


# --- 0. fetch ---
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


# --- 1. ingest ---
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


# --- 2. validate ---
def _log_validation(
    paths: ProjectPaths,
    params: Params,
    summary: dict[str, Any],
    report: Path | None,
    parent_run_id: str | None,
    passed: bool,
) -> str:
    client, experiment_id = mlflow_client(paths, params)
    run_id = registry.start_run(client, experiment_id, "validate", parent_run_id, {"stage": "validate"})
    numeric = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    registry.log_flat(client, run_id, metrics=numeric)
    if report is not None:
        client.log_artifact(run_id, str(report), "validation")
    client.set_terminated(run_id, "FINISHED" if passed else "FAILED")
    return run_id


def validate(paths: ProjectPaths, params: Params, parent_run_id: str | None = None) -> dict[str, Any]:
    frame = pd.read_parquet(paths.interim_tracks)
    meta = read_json(paths.ingest_meta)
    suite = load_suite(paths.root / "configs" / "expectations" / "tracks.yaml")
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


# --- 3. featurize (the per-track table) ---
def featurize(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    listings = pd.read_parquet(paths.validated_tracks)
    tracks, report = collapse_to_tracks(listings, params.featurize.popularity_reconcile)
    write_parquet(tracks, paths.features)
    summary = report.as_dict()
    write_json(summary, paths.featurize_meta)
    return summary


# --- 4. split ---
def split(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    tracks = pd.read_parquet(paths.features)
    splits = make_splits(tracks, params.split.test_size, params.split.seed)
    write_parquet(splits, paths.splits)
    return {protocol: splits[f"split_{protocol}"].value_counts().to_dict() for protocol in PROTOCOLS}


# --- 5. train ---
def _protocols(params: Params) -> list[str]:
    # The main protocol first: its model is the one registered; the other is reported beside it.
    return [params.split.protocol, *[p for p in PROTOCOLS if p != params.split.protocol]]


def train(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    summary: dict[str, Any] = {}
    with atomic_dir(paths.model_dir) as staging:
        for protocol in _protocols(params):
            train_rows, _ = split_frames(tracks, splits, protocol)
            started = time.perf_counter()
            model = fit_popularity_model(
                train_rows,
                params.train.lightgbm,
                params.train.seed,
                params.train.feature_groups,
                params.train.balanced_weights,
            )
            registry.save_sklearn_model(model, staging / protocol, model_inputs(train_rows.head(5)))
            summary[protocol] = {
                "train_rows": len(train_rows),
                "fit_seconds": round(time.perf_counter() - started, 2),
            }
    return summary


# --- 6. evaluate ---
def _plots(y_true: np.ndarray, y_pred: np.ndarray, model: Any, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    axes[0].hexbin(y_true, y_pred, gridsize=40, mincnt=1, cmap="viridis")
    axes[0].plot([0, 100], [0, 100], "r--", lw=1)
    axes[0].set(xlabel="actual popularity", ylabel="predicted", title="Predicted vs actual (holdout)")
    axes[1].hist(y_pred - y_true, bins=60, color="steelblue")
    axes[1].set(xlabel="prediction - actual", ylabel="tracks", title="Residuals (holdout)")
    fig.tight_layout()
    for name, figure in (("predicted_vs_actual.png", fig),):
        with atomic_path(folder / name, ".png") as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        written.append(folder / name)
    plt.close(fig)
    regressor = model.named_steps["model"]
    names = model.named_steps["features"].get_feature_names_out()
    importance = pd.Series(regressor.booster_.feature_importance("gain"), index=names).nlargest(25)[::-1]
    fig, ax = plt.subplots(figsize=(7, 7))
    importance.plot.barh(ax=ax, color="darkorange")
    ax.set(title="Feature importance (gain), top 25", xlabel="gain")
    fig.tight_layout()
    with atomic_path(folder / "feature_importance.png", ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    written.append(folder / "feature_importance.png")
    return written


def evaluate(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    metrics: dict[str, Any] = {"main_protocol": params.split.protocol}
    predictions = []
    for protocol in _protocols(params):
        _, test_rows = split_frames(tracks, splits, protocol)
        model = mlflow.sklearn.load_model(str(paths.model_dir / protocol))
        y_pred = predict_popularity(model, test_rows)
        y_true = test_rows[TARGET].to_numpy(dtype="float64")
        metrics[protocol] = regression_metrics(y_true, y_pred)
        predictions.append(
            pd.DataFrame(
                {
                    "track_id": test_rows["track_id"],
                    "protocol": protocol,
                    "actual": y_true,
                    "predicted": y_pred,
                }
            )
        )
        if protocol == params.split.protocol:
            _plots(y_true, y_pred, model, paths.reports / "evaluation")
    write_parquet(pd.concat(predictions, ignore_index=True), paths.predictions)
    write_json(metrics, paths.metrics)
    return metrics


# --- 7. register ---
def register(paths: ProjectPaths, params: Params, parent_run_id: str | None = None) -> dict[str, Any]:
    protocol = params.split.protocol
    metrics = read_json(paths.metrics)
    main_metrics = metrics[protocol]
    model = mlflow.sklearn.load_model(str(paths.model_dir / protocol))
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    _, test_rows = split_frames(tracks, splits, protocol)
    name = params.registry.model_name

    client, experiment_id = mlflow_client(paths, params)
    data_hash = read_json(paths.ingest_meta)["content_hash"]
    tags = {
        "data_hash": data_hash,
        "params_hash": params_hash(params),
        "git_commit": git_commit(paths.root),
        "protocol": protocol,
        **{f"holdout_{k}": f"{v:.4f}" for k, v in main_metrics.items() if k != "n"},
    }
    run_id = registry.start_run(
        client, experiment_id, f"train-{name}", parent_run_id, {"stage": "register", **tags}
    )
    registry.log_flat(
        client,
        run_id,
        params={
            "model": "lightgbm",
            **params.train.lightgbm.model_dump(),
            "seed": params.train.seed,
            "feature_groups": ",".join(params.train.feature_groups),
            "split_protocol": protocol,
            "test_size": params.split.test_size,
            "split_seed": params.split.seed,
        },
        metrics={f"holdout_{p}_{k}": v for p in PROTOCOLS for k, v in metrics[p].items()},
    )
    for artifact in (paths.metrics, paths.featurize_meta, paths.validation_summary):
        if artifact.is_file():
            client.log_artifact(run_id, str(artifact), "pipeline")
    evaluation_reports = paths.reports / "evaluation"
    if evaluation_reports.is_dir():
        client.log_artifacts(run_id, str(evaluation_reports), "evaluation")

    # The champion is judged on today's holdout, not on the score it had when it was registered.
    champion = registry.champion_version(client, name)
    champion_rmse = None
    if champion is not None:
        champion_model = mlflow.sklearn.load_model(f"models:/{name}@{registry.CHAMPION}")
        champion_pred = predict_popularity(champion_model, test_rows)
        champion_rmse = regression_metrics(test_rows[TARGET].to_numpy("float64"), champion_pred)["rmse"]
        registry.log_flat(client, run_id, metrics={"champion_holdout_rmse": champion_rmse})
    decision = registry.decide_promotion(
        main_metrics["rmse"], champion_rmse, params.registry.promotion_margin
    )

    input_example = model_inputs(test_rows.head(5))
    version, model_uri = registry.log_and_register(client, run_id, model, input_example, name, tags)
    aliases = registry.apply_aliases(client, name, version, decision)
    client.set_tag(run_id, "promotion_decision", decision.reason)
    client.set_terminated(run_id, "FINISHED")
    summary = {
        "model_name": name,
        "version": version,
        "model_uri": model_uri,
        "run_id": run_id,
        "aliases": aliases,
        "promotion": decision.reason,
        "champion_version": version if decision.promote else (str(champion.version) if champion else None),
    }
    write_json(summary, paths.registration)
    return summary


# --- feature ablation (on demand: `trackflow ablation`) ---
ABLATION_ORDER = ("audio", "engineered", "genre", "artist_frequency", "artist_target", "album_target")


def ablation(paths: ProjectPaths, params: Params) -> dict[str, Any]:
    """Add feature groups one at a time and report holdout metrics under both protocols."""
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    rows = []
    for depth in range(1, len(ABLATION_ORDER) + 1):
        groups = ABLATION_ORDER[:depth]
        row: dict[str, Any] = {"groups": "+".join(groups)}
        for protocol in PROTOCOLS:
            train_rows, test_rows = split_frames(tracks, splits, protocol)
            model = fit_popularity_model(train_rows, params.train.lightgbm, params.train.seed, groups)
            metrics = regression_metrics(
                test_rows[TARGET].to_numpy("float64"), predict_popularity(model, test_rows)
            )
            row.update({f"{protocol}_{k}": v for k, v in metrics.items() if k != "n"})
        log.info("ablation %s: %s", row["groups"], row)
        rows.append(row)
    table = pd.DataFrame(rows)
    header = "| feature groups | artist RMSE | artist MAE | artist R² | track RMSE | track MAE | track R² |"
    lines = [
        "# Feature ablation: LightGBM popularity baseline",
        "",
        "Groups added one at a time; holdouts grouped by primary artist and by track "
        f"(seed {params.split.seed}).",
        "",
        header,
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['groups']} | {r['artist_rmse']:.3f} | {r['artist_mae']:.3f} | {r['artist_r2']:.3f} "
            f"| {r['track_rmse']:.3f} | {r['track_mae']:.3f} | {r['track_r2']:.3f} |"
        )
    write_text("\n".join(lines) + "\n", paths.reports / "ablation.md")
    write_json(table.to_dict(orient="records"), paths.reports / "ablation.json")
    return {"rows": rows}
