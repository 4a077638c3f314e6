"""Holdout metrics for the popularity regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from components.catalog import album_key


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


def per_genre_error(y_true: np.ndarray, y_pred: np.ndarray, genres: list[str]) -> pd.DataFrame:
    """MAE and bias of popularity predictions per (first) genre, worst first."""

    frame = pd.DataFrame({"genre": genres, "error": np.asarray(y_pred) - np.asarray(y_true)})
    table = frame.groupby("genre")["error"].agg(mae=lambda e: float(np.abs(e).mean()), bias="mean", n="size")
    return table.sort_values("mae", ascending=False).reset_index()


def recall_at_precision(y_true: np.ndarray, scores: np.ndarray, min_precision: float) -> tuple[float, float]:
    """The best recall among thresholds whose precision is at least `min_precision` (and that threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    ok = precision[:-1] >= min_precision
    if not ok.any():
        return 0.0, float("nan")
    best = int(np.argmax(np.where(ok, recall[:-1], -1)))
    return float(recall[best]), float(thresholds[best])


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, min_precision: float) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    y_true = np.asarray(y_true, dtype="int64")
    scores = np.clip(np.asarray(scores, dtype="float64"), 1e-7, 1 - 1e-7)
    recall, threshold = recall_at_precision(y_true, scores, min_precision)
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "pr_auc": float(average_precision_score(y_true, scores)),
        "log_loss": float(log_loss(y_true, scores, labels=[0, 1])),
        f"recall_at_precision_{min_precision:g}": recall,
        "threshold_at_precision": threshold,
        "positive_rate": float(y_true.mean()),
        "brier": float(np.mean((scores - y_true) ** 2)),
        "calibration_error": expected_calibration_error(y_true, scores),
        "n": len(y_true),
    }


def calibration_bins(
    y_true: np.ndarray, scores: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin (empty ones left out): the mean predicted probability, the observed
    positive rate, and the number of rows."""
    y_true = np.asarray(y_true, dtype="float64")
    scores = np.asarray(scores, dtype="float64")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    predicted = np.bincount(which, weights=scores, minlength=bins)[filled] / counts[filled]
    observed = np.bincount(which, weights=y_true, minlength=bins)[filled] / counts[filled]
    return predicted, observed, counts[filled]


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """The row-weighted mean gap between predicted probability and observed rate over the bins: 0 for
    probabilities that mean what they say."""
    predicted, observed, counts = calibration_bins(y_true, scores, bins)
    return float(np.sum(counts * np.abs(predicted - observed)) / max(int(counts.sum()), 1))


def genre_metrics(label_sets: list[set[str]], proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Top-1 / top-3 set accuracy and macro-F1; a top-1 prediction in the track's set counts as right."""
    from sklearn.metrics import f1_score

    order = np.argsort(-np.asarray(proba), axis=1)[:, :3]
    ranked = [[classes[k] for k in row] for row in order]
    top1 = [r[0] for r in ranked]
    # For F1 the true label is the predicted one when it is in the set, else the set's first genre.
    truth = [p if p in s else sorted(s)[0] for p, s in zip(top1, label_sets, strict=True)]
    return {
        "top1_set_accuracy": set_accuracy_at_k(label_sets, ranked, k=1),
        "top3_set_accuracy": set_accuracy_at_k(label_sets, ranked, k=3),
        "macro_f1": float(f1_score(truth, top1, average="macro", labels=sorted(set(truth)), zero_division=0)),
        "n": len(label_sets),
    }


def most_confused_pairs(label_sets: list[set[str]], top1: list[str], n: int = 15) -> pd.DataFrame:
    """The (true, predicted) genre pairs most often confused, for wrong top-1 predictions."""

    wrong = [(sorted(s)[0], p) for s, p in zip(label_sets, top1, strict=True) if p not in s]
    if not wrong:
        return pd.DataFrame(columns=["true", "predicted", "count"])
    counts = pd.DataFrame(wrong, columns=["true", "predicted"]).value_counts().head(n)
    return counts.rename("count").reset_index()


ALBUM_SUBSETS: tuple[str, ...] = ("album_unseen", "album_shared")


def album_shared(test_albums: pd.Series, train_albums: pd.Series) -> np.ndarray:
    """Per held-out track, whether a training track carries the same album name. The artist holdout keeps
    artists apart, not albums: compilations, soundtracks and the same album credited in another order cross
    it, and such tracks are far easier to place than those of an album the model never saw."""
    seen = set(album_key(train_albums)) - {""}
    return np.array([key in seen for key in album_key(test_albums)], dtype=bool)
