"""Outlier scores: an IsolationForest and a small PyTorch autoencoder's reconstruction error, combined.

The autoencoder is trained with torch and kept as numpy weights: scoring (batch scoring, drift monitoring)
then needs neither torch nor a GPU. The two opinions are put on one scale by robust standardisation against
the training rows (median and interquartile range; the error is log-transformed first, it is heavy-tailed),
and `outlier_score` is their mean. `is_outlier` marks scores above the training quantile 1 - contamination.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted

from components.discovery.space import SPACE_FEATURES, AudioSpace, DiscoveryInputError

Layers = list[tuple[np.ndarray, np.ndarray]]


def train_autoencoder(
    Z: np.ndarray,
    hidden: int,
    bottleneck: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> tuple[Layers, list[float]]:
    """A d -> hidden -> bottleneck -> hidden -> d MLP (tanh) trained on MSE; returns numpy weights (W, b)
    per linear layer and the mean training loss per epoch."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    d = Z.shape[1]
    model = nn.Sequential(
        nn.Linear(d, hidden),
        nn.Tanh(),
        nn.Linear(hidden, bottleneck),
        nn.Tanh(),
        nn.Linear(bottleneck, hidden),
        nn.Tanh(),
        nn.Linear(hidden, d),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    data = torch.as_tensor(Z, dtype=torch.float32)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for start in range(0, len(data), batch_size):
            batch = data[order[start : start + batch_size]]
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(batch), batch)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(data))
    layers = [
        (m.weight.detach().numpy().T.astype("float64"), m.bias.detach().numpy().astype("float64"))
        for m in model
        if isinstance(m, nn.Linear)
    ]
    return layers, losses


def reconstruct(layers: Layers, Z: np.ndarray) -> np.ndarray:
    """The autoencoder's forward pass in numpy (tanh between linear layers, linear output)."""
    out = np.asarray(Z, dtype="float64")
    for position, (weight, bias) in enumerate(layers):
        out = out @ weight + bias
        if position < len(layers) - 1:
            out = np.tanh(out)
    return out


def _robust(values: np.ndarray) -> tuple[float, float]:
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return float(median), float(q3 - q1) or 1.0


class OutlierDetector(BaseEstimator):
    """Raw rows -> DataFrame `outlier_score` (float, higher = odder) and `is_outlier` (bool); see the module
    docstring. `score_components` adds both opinions; `explain` names the features that make a row odd."""

    def __init__(
        self,
        features: Sequence[str] = SPACE_FEATURES,
        contamination: float = 0.01,
        n_estimators: int = 200,
        hidden: int = 8,
        bottleneck: int = 3,
        epochs: int = 20,
        batch_size: int = 512,
        learning_rate: float = 3e-3,
        seed: int = 42,
    ):
        self.features = features
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: object = None) -> OutlierDetector:
        if not 0 < self.contamination < 0.5:
            raise DiscoveryInputError(f"contamination must be in (0, 0.5), got {self.contamination}")
        self.space_ = AudioSpace(self.features).fit(X)
        Z = self.space_.transform(X)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1).fit(
            Z
        )
        self.layers_, self.loss_history_ = train_autoencoder(
            Z, self.hidden, self.bottleneck, self.epochs, self.batch_size, self.learning_rate, self.seed
        )
        isolation = -self.forest_.score_samples(Z)
        log_error = np.log(self._errors(Z).sum(axis=1) + 1e-9)
        self.isolation_scale_ = _robust(isolation)
        self.error_scale_ = _robust(log_error)
        combined = self._combine(isolation, log_error)
        self.threshold_ = float(np.quantile(combined, 1.0 - self.contamination))
        return self

    def _errors(self, Z: np.ndarray) -> np.ndarray:
        return (reconstruct(self.layers_, Z) - Z) ** 2

    def _combine(self, isolation: np.ndarray, log_error: np.ndarray) -> np.ndarray:
        (m1, s1), (m2, s2) = self.isolation_scale_, self.error_scale_
        return 0.5 * ((isolation - m1) / s1 + (log_error - m2) / s2)

    def score_components(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "threshold_")
        Z = self.space_.transform(X)
        isolation = -self.forest_.score_samples(Z)
        error = self._errors(Z).sum(axis=1)
        combined = self._combine(isolation, np.log(error + 1e-9))
        return pd.DataFrame(
            {
                "isolation_score": isolation,
                "reconstruction_error": error,
                "outlier_score": combined,
                "is_outlier": combined > self.threshold_,
            }
        )

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """The scoring contract: `outlier_score` and `is_outlier`, one row per input row, in order."""
        return self.score_components(X)[["outlier_score", "is_outlier"]]

    def explain(self, X: pd.DataFrame, top: int = 3) -> list[list[dict[str, Any]]]:
        """Per row, the `top` features with the largest reconstruction error: name, value (original units;
        duration as log seconds), z against the training rows and the autoencoder's expected value."""
        check_is_fitted(self, "threshold_")
        raw = self.space_.raw_features(X).to_numpy("float64")
        Z = self.space_.transform(X)
        expected = self.space_.inverse_transform(reconstruct(self.layers_, Z)).to_numpy()
        errors = self._errors(Z)
        names = list(self.features)
        out = []
        for row in range(len(Z)):
            order = np.argsort(-errors[row])[:top]
            out.append(
                [
                    {
                        "feature": names[j],
                        "value": round(float(raw[row, j]), 4),
                        "z": round(float(Z[row, j]), 2),
                        "expected": round(float(expected[row, j]), 4),
                    }
                    for j in order
                ]
            )
        return out


def shuffle_columns(rows: pd.DataFrame, columns: Sequence[str], seed: int) -> pd.DataFrame:
    """Synthetic broken tracks: every listed column permuted independently (a copy). Each value is still a
    real one, but the combination is incoherent (say, loud and acoustic and spoken at once)."""
    rng = np.random.default_rng(seed)
    broken = rows.copy()
    for column in columns:
        broken[column] = rows[column].to_numpy()[rng.permutation(len(rows))]
    return broken


def synthetic_anomaly_auc(scores_clean: np.ndarray, scores_broken: np.ndarray) -> float:
    """ROC-AUC of the outlier score separating broken copies from the real rows (0.5 = blind)."""
    labels = np.r_[np.zeros(len(scores_clean)), np.ones(len(scores_broken))]
    return float(roc_auc_score(labels, np.r_[scores_clean, scores_broken]))
