"""The pyfunc of the similar-tracks model, and what each registered discovery model is.

`clusters` and `outliers` are scikit-learn estimators whose `predict` takes raw rows and returns a DataFrame;
they are logged with the sklearn flavour. The similarity index answers a different question per call (how
many neighbours, how much genre weight), so `similar-tracks` is a pyfunc whose
`predict(rows, params={"k": 10, "genre_weight": 0.0})` returns the long neighbour table. Logging and
registration are trackflow/tracking.py's, as for every registered model.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from components.discovery.similarity import SimilarityIndex

DESCRIPTIONS = {
    "clusters": "Audio-feature clusters (KMeans) and niche flags (HDBSCAN) for raw track rows",
    "outliers": "Outlier score (IsolationForest + autoencoder) and is_outlier for raw track rows",
    "similar-tracks": "Nearest tracks in the standardised audio space (copies of the query excluded)",
}


class SimilarTracksModel(mlflow.pyfunc.PythonModel):
    """pyfunc around a built SimilarityIndex: raw rows in, one row per (query, neighbour) out."""

    def __init__(self, index: SimilarityIndex, k: int = 10):
        self.index = index
        self.k = k

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        return self.index.query(
            model_input, k=int(params.get("k", self.k)), genre_weight=params.get("genre_weight")
        )
