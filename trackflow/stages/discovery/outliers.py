"""Discovery part outliers: IsolationForest and the autoencoder, judged by synthetic anomalies."""

from __future__ import annotations

import time
from typing import Any

from components.discovery.outliers import OutlierDetector, shuffle_columns, synthetic_anomaly_auc
from components.discovery.report import outliers_markdown
from components.discovery.space import copy_groups, raw_columns
from components.io import atomic_dir, write_json, write_text
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.common import holdout_sample, load_tracks, log, round_floats, save_model


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
    holdout = holdout_sample(tracks, is_test, op.eval_rows, seed)
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
        write_json(round_floats(top_table), staging / "top_outliers.json")
        write_json(round_floats({"loss_by_epoch": detector.loss_history_}), staging / "autoencoder.json")
        write_json(round_floats(metrics), staging / "metrics.json")
    write_text(outliers_markdown(top_table, metrics), paths.discovery_reports / "outliers.md")
    log.info("outliers: %s", round_floats(metrics))
    return round_floats(metrics)
