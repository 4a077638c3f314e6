"""Holdout metrics for the popularity regression."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on an empty holdout")
    # Recall on the most popular decile: of the truly top-10% tracks, the share the model also ranks top-10%.
    top_true = y_true >= np.quantile(y_true, 0.9)
    top_pred = y_pred >= np.quantile(y_pred, 0.9)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
        "top_decile_recall": float((top_true & top_pred).sum() / max(top_true.sum(), 1)),
        "n": len(y_true),
    }


def set_accuracy_at_k(genre_sets: list[set[str]], ranked_predictions: list[list[str]], k: int = 1) -> float:
    """Genre is a set of labels per track: a prediction is right when one of its top k is in the set."""
    if len(genre_sets) != len(ranked_predictions):
        raise ValueError(f"{len(genre_sets)} label sets but {len(ranked_predictions)} predictions")
    if not genre_sets:
        raise ValueError("cannot evaluate on an empty holdout")
    pairs = zip(genre_sets, ranked_predictions, strict=True)
    hits = sum(bool(truth & set(ranked[:k])) for truth, ranked in pairs)
    return hits / len(genre_sets)
