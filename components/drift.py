"""Data and prediction drift of a batch against the champion's training data, with Evidently 0.7.

Evidently picks each column's test by type and size (for more than 1,000 rows: normed Wasserstein distance
for numbers, Jensen-Shannon distance for categories, both with threshold 0.1; for small samples K-S and
chi-square p-values at 0.05). A column drifts when its distance reaches the threshold, or its p-value falls
under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from components.schema import AUDIO_FEATURES, CATEGORICAL_AUDIO

# The raw model inputs compared between reference and batch (text ids and names are not distributions).
NUMERICAL_FEATURES: tuple[str, ...] = (
    "duration_ms",
    *(f for f in AUDIO_FEATURES if f not in CATEGORICAL_AUDIO),
)
CATEGORICAL_FEATURES: tuple[str, ...] = (*CATEGORICAL_AUDIO, "explicit")
NUMERICAL_PREDICTIONS: tuple[str, ...] = ("predicted_popularity", "hit_probability")
CATEGORICAL_PREDICTIONS: tuple[str, ...] = ("predicted_genre",)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    rows_reference: int
    rows_current: int
    html: str = field(repr=False)
    predictions_html: str | None = field(default=None, repr=False)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.features if c.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.predictions)

    @property
    def drift_detected(self) -> bool:
        """Any input column or any prediction drifted."""
        return bool(self.drifted_columns) or self.prediction_drift

    def summary(self) -> dict[str, Any]:
        return {
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "drift_detected": self.drift_detected,
            "drift_share": self.drift_share,
            "drifted_columns": self.drifted_columns,
            "prediction_drift": self.prediction_drift,
            "drifted_predictions": [c.column for c in self.predictions if c.drifted],
            "columns": {c.column: _column_json(c) for c in self.features},
            "predictions": {c.column: _column_json(c) for c in self.predictions},
        }


def _column_json(drift: ColumnDrift) -> dict[str, Any]:
    return {
        "method": drift.method,
        "threshold": drift.threshold,
        "score": drift.score,
        "drifted": drift.drifted,
    }


def _is_drifted(method: str, score: float, threshold: float) -> bool:
    # Evidently's p-value tests flag drift below the threshold; its distances at or above it.
    if "p_value" in method:
        return score < threshold
    return score >= threshold


def _prepared(frame: pd.DataFrame, numerical: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """A copy with plain dtypes: floats for numbers, strings for categories (Evidently wants no pd.NA)."""
    out = pd.DataFrame(index=range(len(frame)))
    for column in numerical:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy()
    for column in categorical:
        values = frame[column].astype(object)
        out[column] = values.where(values.notna(), "missing").astype(str).to_numpy()
    return out


def _evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    drift_share: float,
) -> tuple[dict[str, ColumnDrift], str]:
    """One Evidently report over the given columns: each column's drift, and the report's HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    report = Report([DataDriftPreset(columns=[*numerical, *categorical], drift_share=drift_share)])
    run = report.run(
        Dataset.from_pandas(_prepared(current, numerical, categorical), data_definition=definition),
        Dataset.from_pandas(_prepared(reference, numerical, categorical), data_definition=definition),
    )
    by_column: dict[str, ColumnDrift] = {}
    for metric in run.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        # The method and the threshold Evidently chose are named in the metric's name.
        name = metric["metric_name"]
        method = config.get("method") or name.split("method=", 1)[1].split(",threshold=", 1)[0]
        threshold = float(config.get("threshold") or name.rsplit("threshold=", 1)[1].rstrip(")"))
        score = float(metric["value"])
        drifted = _is_drifted(method, score, threshold)
        by_column[config["column"]] = ColumnDrift(config["column"], method, threshold, score, drifted)
    return by_column, run.get_html_str(as_iframe=False)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    prediction_reference: pd.DataFrame | None = None,
    numerical: Sequence[str] = NUMERICAL_FEATURES,
    categorical: Sequence[str] = CATEGORICAL_FEATURES,
    prediction_numerical: Sequence[str] = NUMERICAL_PREDICTIONS,
    prediction_categorical: Sequence[str] = CATEGORICAL_PREDICTIONS,
    drift_share: float = 0.5,
) -> DriftResult:
    """Input columns of `current` against `reference` (the rows the model learned from), and prediction
    columns against `prediction_reference`: the model's predictions on rows it did not train on (its
    in-sample predictions are sharper than on any new batch, and would flag drift on an iid one). Prediction
    columns missing from either side are skipped (a task without a champion has none). Nothing is modified."""
    missing = [c for c in (*numerical, *categorical) if c not in reference or c not in current]
    if missing:
        raise KeyError(f"drift needs column(s) {missing} in both the reference and the batch")
    features, html = _evidently(reference, current, numerical, categorical, drift_share)
    predictions: dict[str, ColumnDrift] = {}
    predictions_html = None
    if prediction_reference is not None:
        both = set(prediction_reference.columns) & set(current.columns)
        pred_num = [c for c in prediction_numerical if c in both]
        pred_cat = [c for c in prediction_categorical if c in both]
        if pred_num or pred_cat:
            predictions, predictions_html = _evidently(
                prediction_reference, current, pred_num, pred_cat, drift_share
            )
    return DriftResult(
        features=tuple(features[c] for c in (*numerical, *categorical)),
        predictions=tuple(predictions.values()),
        rows_reference=len(reference),
        rows_current=len(current),
        html=html,
        predictions_html=predictions_html,
    )
