"""MLflow tracking and registry: explicit run ids through MlflowClient, and the champion/challenger rule."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import components

CHAMPION = "champion"
CHALLENGER = "challenger"
COMPONENTS_DIR = Path(components.__file__).resolve().parent


def resolve_tracking_uri(tracking_uri: str, root: Path) -> str:
    """A relative sqlite path in params.yaml is taken relative to the project root."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not tracking_uri.startswith(prefix + "/"):
        db = (root / tracking_uri[len(prefix) :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{db}"
    return tracking_uri


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())


def start_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    all_tags = dict(tags or {})
    if parent_run_id:
        # The tag MLflow's UI uses to nest runs; set explicitly, no thread-local active run involved.
        all_tags["mlflow.parentRunId"] = parent_run_id
    return client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id


def log_flat(
    client: MlflowClient, run_id: str, *, params: Mapping[str, Any] = (), metrics: Mapping[str, float] = ()
) -> None:
    for key, value in dict(params).items():
        client.log_param(run_id, key, str(value)[:6000])
    for key, value in dict(metrics).items():
        client.log_metric(run_id, key, float(value))


def _signature(model: Any, input_example: pd.DataFrame) -> Any:
    with warnings.catch_warnings():
        # Integer inputs are deliberate: they match the dataset's raw columns (see modeling.model_inputs);
        # MLflow's hint about missing integers would otherwise repeat for every model saved.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        return infer_signature(input_example, model.predict(input_example))


# What a logged model needs at load time. Listed, not inferred: MLflow's inference starts a subprocess that
# re-imports the model (about 5 s a model).
_RUNTIME_PACKAGES = (
    "mlflow",
    "scikit-learn",
    "pandas",
    "numpy",
    "pyarrow",
    "cloudpickle",
    "lightgbm",
    "xgboost",
    "catboost",
    "torch",
)


@functools.cache
def pip_requirements() -> tuple[str, ...]:
    found = []
    for name in _RUNTIME_PACKAGES:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def save_sklearn_model(model: Any, path: Path, input_example: pd.DataFrame) -> None:
    """Save a fitted pipeline as an MLflow model folder (signature, input example, our code inside)."""
    signature = _signature(model, input_example)
    mlflow.sklearn.save_model(
        model,
        str(path),
        # cloudpickle, not skops: the pipeline holds our own transformer class, shipped via code_paths.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        code_paths=[str(COMPONENTS_DIR)],
        signature=signature,
        input_example=input_example,
        pip_requirements=list(pip_requirements()),
    )


_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_score: float
    champion_score: float | None


def decide_promotion(
    challenger: float,
    champion: float | None,
    margin: float,
    metric: str = "rmse",
    lower_is_better: bool = True,
) -> PromotionDecision:
    """The challenger becomes champion only when its holdout `metric` beats the champion's on the same rows by
    more than `margin`; a tie keeps the champion, so a deterministic rerun never churns the alias."""
    if champion is None:
        return PromotionDecision(True, "no champion yet", challenger, None)
    gain = champion - challenger if lower_is_better else challenger - champion
    comparison = f"challenger {metric} {challenger:.4f} vs champion {champion:.4f}"
    # Parallel tree ensembles sum in thread order: the same model can score 1e-15 apart. That is a tie.
    if gain > margin + _TIE_TOLERANCE:
        return PromotionDecision(
            True, f"promoted: {comparison} (better by more than {margin})", challenger, champion
        )
    return PromotionDecision(False, f"champion kept: {comparison} (margin {margin})", challenger, champion)


def champion_version(client: MlflowClient, model_name: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    run_id: str
    model_uri: str
    aliases: list[str]
    decision: PromotionDecision


def log_and_register(
    client: MlflowClient,
    run_id: str,
    model: Any,
    input_example: pd.DataFrame,
    model_name: str,
    tags: Mapping[str, str],
) -> tuple[str, str]:
    """Log `model` to `run_id` and register a new version of `model_name`; returns (version, model_uri)."""
    signature = _signature(model, input_example)
    # log_model needs an active run; it is scoped to this call and to the explicit run id.
    with mlflow.start_run(run_id=run_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            code_paths=[str(COMPONENTS_DIR)],
            signature=signature,
            input_example=input_example,
            pip_requirements=list(pip_requirements()),
        )
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="Track popularity (0-100) from raw track rows")
    version = client.create_model_version(model_name, info.model_uri, run_id=run_id, tags=dict(tags))
    return str(version.version), f"models:/{model_name}/{version.version}"


def apply_aliases(
    client: MlflowClient, model_name: str, version: str, decision: PromotionDecision
) -> list[str]:
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    aliases = [CHALLENGER]
    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        aliases.append(CHAMPION)
    client.set_model_version_tag(model_name, version, "promotion_decision", decision.reason)
    return aliases


def promote_by_hand(client: MlflowClient, model_name: str, version: str, who: str, reason: str) -> str | None:
    """Set `champion` on `version` by a person's decision, recording who and why; returns the previous one."""
    target = client.get_model_version(model_name, version)  # raises if the version does not exist
    previous = champion_version(client, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, target.version)
    client.set_model_version_tag(model_name, target.version, "promoted_by", who)
    client.set_model_version_tag(model_name, target.version, "promotion_reason", reason)
    client.set_model_version_tag(model_name, target.version, "promotion_decision", f"manual: {reason}")
    return str(previous.version) if previous else None


_SCHEMA_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
}


def conform_to_signature(frame: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Cast columns to the types in a pyfunc model's input signature (a copy), so that a model logged with
    other numeric types (say, integers declared as doubles by an older version) still scores raw rows.
    Integer casts that would lose information are left to MLflow's own schema check to reject."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return frame
    conformed = frame.copy()
    for spec in schema.inputs:
        target = _SCHEMA_DTYPES.get(getattr(spec.type, "name", str(spec.type)))
        if spec.name not in conformed.columns or target is None:
            continue
        column = conformed[spec.name]
        if target.startswith("int") and (column.isna().any() or not (column.dropna() % 1 == 0).all()):
            continue
        conformed[spec.name] = column.astype(target)
    return conformed
