"""MLflow wrappers and registration for the discovery models.

`clusters` and `outliers` are scikit-learn estimators whose `predict` takes raw rows and returns a DataFrame;
they are logged with the sklearn flavour through `components.registry.log_and_register`. The similarity index
answers a different question per call (how many neighbours, how much genre weight), so `similar-tracks` is a
pyfunc whose `predict(rows, params={"k": 10, "genre_weight": 0.0})` returns the long neighbour table.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components import registry
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


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model with its own description (log_and_register's default text is the
    popularity model's)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=DESCRIPTIONS.get(name, ""))


def log_and_register_pyfunc(
    client: MlflowClient,
    run_id: str,
    model: SimilarTracksModel,
    input_example: pd.DataFrame,
    model_name: str,
    tags: Mapping[str, str],
) -> tuple[str, str]:
    """The pyfunc counterpart of `registry.log_and_register`; returns (version, model_uri)."""
    from mlflow.models import infer_signature

    output = model.predict(None, input_example)
    with warnings.catch_warnings():
        # Integer inputs are deliberate, as in registry._signature: they match the dataset's raw columns.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(
            input_example, output, params={"k": int(model.k), "genre_weight": float(model.index.genre_weight)}
        )
    ensure_registered_model(client, model_name)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            code_paths=[str(registry.COMPONENTS_DIR)],
            signature=signature,
            input_example=input_example,
            pip_requirements=list(registry.pip_requirements()),
        )
    version = client.create_model_version(model_name, info.model_uri, run_id=run_id, tags=dict(tags))
    return str(version.version), f"models:/{model_name}/{version.version}"
