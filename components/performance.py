"""The champions' realised quality on a labelled batch: what they predicted when the batch was scored against
the outcomes that came back, with Evidently's regression and classification reports, and the retraining
decision that weighs it with drift. Nothing here reads or writes files."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.evaluation import regression_metrics
from components.schema import GENRE, GENRE_SEPARATOR, TARGET

POPULARITY_PREDICTION = "predicted_popularity"
HIT_PREDICTION = "hit_probability"
GENRE_PREDICTION = "predicted_genre"
NO_NEW_LABELS = "drift, no new labels"


@dataclass(frozen=True)
class RealisedPerformance:
    """Realised metrics per task (popularity: rmse, mae, r2; hit: roc_auc; genre: top1_set_accuracy)."""

    rows: int
    metrics: dict[str, dict[str, float]]
    html: str | None = field(default=None, repr=False)


def realised_performance(joined: pd.DataFrame, hit_threshold: float) -> RealisedPerformance:
    """`joined`: one row per labelled track with its outcomes (`popularity`, `track_genre`, where labelled)
    and the predictions scoring wrote for it. Tasks without both sides are left out; a hit ROC-AUC needs
    both classes among the labels."""
    metrics: dict[str, dict[str, float]] = {}
    frame = joined.copy()
    has_popularity = TARGET in frame and frame[TARGET].notna().any()
    if has_popularity and POPULARITY_PREDICTION in frame:
        rows = frame[frame[TARGET].notna()]
        metrics["popularity"] = regression_metrics(rows[TARGET].to_numpy(float), rows[POPULARITY_PREDICTION])
    if has_popularity and HIT_PREDICTION in frame:
        rows = frame[frame[TARGET].notna()]
        hit = (rows[TARGET].to_numpy(float) >= hit_threshold).astype(int)
        if 0 < hit.sum() < len(hit):
            from sklearn.metrics import roc_auc_score

            metrics["hit"] = {"roc_auc": float(roc_auc_score(hit, rows[HIT_PREDICTION].to_numpy(float)))}
        frame["hit"] = (frame[TARGET] >= hit_threshold).astype("Int64")
    if GENRE in frame and GENRE_PREDICTION in frame and frame[GENRE].notna().any():
        rows = frame[frame[GENRE].notna()]
        sets = rows[GENRE].astype(str).str.split(GENRE_SEPARATOR)
        right = [p in s for p, s in zip(rows[GENRE_PREDICTION], sets, strict=True)]
        metrics["genre"] = {"top1_set_accuracy": float(np.mean(right))}
    return RealisedPerformance(len(joined), metrics, _evidently_html(frame, hit_threshold))


def _evidently_html(frame: pd.DataFrame, hit_threshold: float) -> str | None:
    """Evidently's regression report for popularity and classification report for hit, as one page."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    labelled = frame[frame[TARGET].notna()] if TARGET in frame else frame.iloc[:0]
    presets, regression, classification = [], [], []
    numerical: list[str] = []
    columns = [TARGET]
    if len(labelled) and POPULARITY_PREDICTION in labelled:
        regression.append(Regression(target=TARGET, prediction=POPULARITY_PREDICTION))
        presets.append(RegressionPreset())
        numerical += [TARGET, POPULARITY_PREDICTION]
        columns.append(POPULARITY_PREDICTION)
    if len(labelled) and HIT_PREDICTION in labelled and labelled["hit"].nunique() == 2:
        classification.append(
            BinaryClassification(target="hit", prediction_probas=HIT_PREDICTION, pos_label=1)
        )
        presets.append(ClassificationPreset())
        numerical.append(HIT_PREDICTION)
        columns += ["hit", HIT_PREDICTION]
    if not presets:
        return None
    data = labelled[list(dict.fromkeys(columns))].copy()
    data[TARGET] = data[TARGET].astype(float)
    if "hit" in data:
        data["hit"] = data["hit"].astype(int)
    definition = DataDefinition(
        numerical_columns=list(dict.fromkeys(numerical)),
        categorical_columns=["hit"] if classification else [],
        regression=regression or None,
        classification=classification or None,
    )
    run = Report(presets).run(Dataset.from_pandas(data, data_definition=definition), None)
    return run.get_html_str(as_iframe=False)


def degraded(
    realised: dict[str, dict[str, float]],
    expected: dict[str, float],
    margins: dict[str, float],
) -> list[str]:
    """The tasks whose realised quality is worse than their holdout quality by more than the margin:
    popularity when its RMSE exceeds the holdout RMSE by more than that share of it, hit when its ROC-AUC
    falls more than that below the holdout's. `expected`: the holdout RMSE / ROC-AUC per task."""
    reasons = []
    rmse, holdout_rmse = realised.get("popularity", {}).get("rmse"), expected.get("popularity")
    share = margins["popularity"]
    if rmse is not None and holdout_rmse is not None and rmse > holdout_rmse * (1 + share):
        reasons.append(f"popularity RMSE {rmse:.3f} on labels > holdout {holdout_rmse:.3f} x (1 + {share:g})")
    auc, holdout_auc = realised.get("hit", {}).get("roc_auc"), expected.get("hit")
    if auc is not None and holdout_auc is not None and auc < holdout_auc - margins["hit"]:
        reasons.append(f"hit ROC-AUC {auc:.3f} on labels < holdout {holdout_auc:.3f} - {margins['hit']:g}")
    return reasons


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    decision: str  # what the monitor did and why, in words (log, artifact, MLflow tag)
    reason: str | None  # the reason recorded on the training run when it retrains


def retrain_decision(
    drift_reason: str | None, new_label_files: int, degraded_reasons: list[str]
) -> RetrainDecision:
    """Retrain on drift (a reason given) only with labels the champions have not learned from, or when
    labels show the champions doing worse than their holdout promised. Drift without new labels would
    only refit the same data: it is recorded, not acted on."""
    # Every reason that holds is recorded: drift with new labels, and the labels showing a worse error.
    reasons = []
    if drift_reason and new_label_files:
        reasons.append(
            f"{drift_reason}; {new_label_files} new label file(s) since the champions were trained"
        )
    if new_label_files and degraded_reasons:
        reasons.append("realised error on new labels: " + "; ".join(degraded_reasons))
    if reasons:
        reason = "; ".join(reasons)
        return RetrainDecision(True, "retrain: " + reason, reason)
    if drift_reason:
        return RetrainDecision(False, f"{NO_NEW_LABELS}: {drift_reason}", None)
    return RetrainDecision(False, "no retrain: no drift past drift.retrain_share, no degraded labels", None)
