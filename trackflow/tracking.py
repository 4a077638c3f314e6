"""MLflow in one place: the project's client and experiment, runs that end FAILED when their body raises,
model logging, and registration behind the champion gate for every registered model (the three tasks and
the three discovery models). Nothing else in the project starts or ends an MLflow run.

Runs are addressed by explicit id through MlflowClient (no thread-local active run), so stages that run side
by side on threads log to their own runs. The gate's decision itself is a pure function
(components/promotion.py).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import components
from components.params import Params
from components.promotion import PromotionDecision, decide_promotion
from trackflow.paths import ProjectPaths
from trackflow.processes import HOST_TAG, ProcessIdentity

log = logging.getLogger("trackflow")
CHAMPION = "champion"
CHALLENGER = "challenger"
# Tags trackflow sets on a version when it moves `champion` there itself (the gate, `trackflow promote`): the
# model server tells a move made elsewhere (the MLflow UI) by their absence, and records it the same way.
PROMOTED_AT, PROMOTED_VIA = "promoted_at", "promoted_via"
# A logged model carries the components package (our transformer and model classes) as code.
COMPONENTS_DIR = Path(components.__file__).resolve().parent
# A tracking URI in the environment when the process starts overrides params.yaml. It is read once, here:
# mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI itself (for subprocesses), so a later read would take
# the store of the last project this process used for the user's choice.
_TRACKING_URI_OVERRIDE = os.environ.get("MLFLOW_TRACKING_URI") or None
Flavour = Literal["sklearn", "pyfunc"]
# On a run that a dead process left RUNNING: when a later run marked it KILLED, and which run did.
KILLED_AT_TAG = "trackflow.killed_at"
KILLED_BY_TAG = "trackflow.killed_by"


def resolve_tracking_uri(tracking_uri: str, root: Path) -> str:
    """A relative sqlite path in params.yaml is taken relative to the project root."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not tracking_uri.startswith(prefix + "/"):
        db = (root / tracking_uri[len(prefix) :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{db}"
    return tracking_uri


# Where `make ui` serves the local store; a tracking server's own address is used when there is one.
LOCAL_UI = "http://127.0.0.1:5000"


def run_url(run_id: str, tracking_uri: str | None = None) -> str:
    """The run's page in the MLflow UI (its direct route, which finds the experiment itself)."""
    uri = tracking_uri or mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#/runs/{run_id}"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())


@dataclass
class Run:
    """An open MLflow run; `status` is what it ends with when its block does not raise."""

    id: str
    status: str = "FINISHED"


@dataclass(frozen=True)
class Tracker:
    client: MlflowClient
    experiment_id: str

    @classmethod
    def for_project(cls, paths: ProjectPaths, params: Params) -> Tracker:
        uri = _TRACKING_URI_OVERRIDE or resolve_tracking_uri(params.mlflow.tracking_uri, paths.root)
        mlflow.set_tracking_uri(uri)  # log_model and models:/ URIs resolve the store globally
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = ensure_experiment(
            client, params.mlflow.experiment, paths.root / params.mlflow.artifact_root
        )
        return cls(client, experiment_id)

    @contextmanager
    def run(
        self, name: str, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> Iterator[Run]:
        """A run for the block: FINISHED (or the status the block set) when it ends, FAILED when it raises,
        so no stage that fails leaves a run RUNNING in the MLflow UI."""
        # Who runs it: a later run can then tell a run whose process was killed from one still going.
        all_tags = {**ProcessIdentity.current().tags(), **(tags or {})}
        if parent_run_id:
            # The tag MLflow's UI uses to nest runs; set explicitly, no thread-local active run involved.
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = Run(self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id)
        if not parent_run_id:
            self.end_abandoned_runs(by_run_id=run.id)
        try:
            yield run
        except BaseException:
            self.client.set_terminated(run.id, "FAILED")
            raise
        self.client.set_terminated(run.id, run.status)

    def end_abandoned_runs(self, by_run_id: str) -> list[str]:
        """Mark KILLED the runs of this experiment left RUNNING by a process of this host that no longer
        exists (`kill -9`, a lost machine), tagged with when and by which run; returns their ids. Runs of
        live processes, and of other hosts, are left alone."""
        me = ProcessIdentity.current()
        host_filter = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{me.host}'"
        ended = []
        for found in self.client.search_runs([self.experiment_id], host_filter, max_results=5000):
            owner = ProcessIdentity.from_tags(found.data.tags)
            if found.info.run_id == by_run_id or owner is None or not owner.gone():
                continue
            self.client.set_tag(found.info.run_id, KILLED_AT_TAG, _utc_now())
            self.client.set_tag(found.info.run_id, KILLED_BY_TAG, by_run_id)
            self.client.set_terminated(found.info.run_id, "KILLED")
            ended.append(found.info.run_id)
            log.warning(
                "MLflow run %s (%s) was left RUNNING by %s, which no longer exists: marked KILLED",
                found.info.run_id,
                found.info.run_name,
                owner.describe(),
            )
        return ended

    def log(self, run_id: str, *, params: Mapping[str, Any] = (), metrics: Mapping[str, float] = ()) -> None:
        for key, value in dict(params).items():
            self.client.log_param(run_id, key, str(value)[:6000])
        for key, value in dict(metrics).items():
            self.client.log_metric(run_id, key, float(value))

    def latest(self, model_name: str) -> Any | None:
        """The newest version of `model_name` (the challenger alias marks it), None when there is none."""
        try:
            return self.client.get_model_version_by_alias(model_name, CHALLENGER)
        except MlflowException:
            return self.champion(model_name)

    def champion(self, model_name: str) -> Any | None:
        """The version behind `model_name@champion`, None when there is none."""
        try:
            return self.client.get_model_version_by_alias(model_name, CHAMPION)
        except MlflowException:
            return None


# --- models ------------------------------------------------------------------------------------------------
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


def signature_of(model: Any, input_example: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Any:
    output = model.predict(None, input_example) if isinstance(model, mlflow.pyfunc.PythonModel) else None
    with warnings.catch_warnings():
        # Integer inputs are deliberate: they match the dataset's raw columns (schema.model_inputs); MLflow's
        # hint about missing integers would otherwise repeat for every model saved.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        if output is None:
            output = model.predict(input_example)
        return infer_signature(input_example, output, params=dict(params) if params else None)


def save_sklearn_model(model: Any, path: Path, input_example: pd.DataFrame) -> None:
    """Save a fitted pipeline as an MLflow model folder (signature, input example, our code inside)."""
    mlflow.sklearn.save_model(
        model,
        str(path),
        # cloudpickle, not skops: the pipeline holds our own transformer class, shipped via code_paths.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        code_paths=[str(COMPONENTS_DIR)],
        signature=signature_of(model, input_example),
        input_example=input_example,
        pip_requirements=list(pip_requirements()),
    )


def log_model(
    run_id: str,
    model: Any,
    input_example: pd.DataFrame,
    flavour: Flavour = "sklearn",
    signature_params: Mapping[str, Any] | None = None,
) -> str:
    """Log `model` as the run's `model` artifact; returns its model URI."""
    signature = signature_of(model, input_example, signature_params)
    common = {
        "name": "model",
        "code_paths": [str(COMPONENTS_DIR)],
        "signature": signature,
        "input_example": input_example,
        "pip_requirements": list(pip_requirements()),
    }
    # log_model needs an active run; it is scoped to this call and to the explicit run id.
    with mlflow.start_run(run_id=run_id):
        if flavour == "pyfunc":
            return mlflow.pyfunc.log_model(python_model=model, **common).model_uri
        return mlflow.sklearn.log_model(
            model, serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE, **common
        ).model_uri


# --- the gate ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """How a registered model is judged: its metric, the direction, the margin a challenger must beat."""

    metric: str
    lower_is_better: bool
    margin: float


def register_behind_gate(
    tracker: Tracker,
    run_id: str,
    *,
    name: str,
    description: str,
    model: Any,
    input_example: pd.DataFrame,
    tags: Mapping[str, str],
    gate: Gate,
    challenger_score: float,
    score_champion: Callable[[Any], float],
    flavour: Flavour = "sklearn",
    signature_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Register `model` as a new version of `name`: `challenger` always, `champion` only when it beats the
    champion on the same rows by more than the margin. `score_champion(pyfunc_model)` scores the current
    champion as scoring would call it; a champion that cannot be scored today stays, and a person decides.
    The decision and both scores are logged on the run and tagged on the version."""
    champion = tracker.champion(name)
    champion_score, unscorable = None, None
    if champion is not None:
        try:
            champion_score = score_champion(mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}"))
            tracker.log(run_id, metrics={f"champion_holdout_{gate.metric}": champion_score})
        except Exception as exc:  # the champion cannot score today's rows: a person must decide
            unscorable = f"{type(exc).__name__}: {exc}"[:300]
            log.error("champion %s v%s could not be evaluated: %s", name, champion.version, unscorable)
    if unscorable is not None:
        decision = PromotionDecision(
            False,
            f"champion kept: it could not be evaluated on today's holdout ({unscorable}); promote by hand",
            challenger_score,
            None,
        )
    else:
        decision = decide_promotion(
            challenger_score, champion_score, gate.margin, gate.metric, gate.lower_is_better
        )
    model_uri = log_model(run_id, model, input_example, flavour, signature_params)
    try:
        tracker.client.get_registered_model(name)
    except MlflowException:
        tracker.client.create_registered_model(name, description=description)
    version = str(
        tracker.client.create_model_version(name, model_uri, run_id=run_id, tags=dict(tags)).version
    )
    aliases = apply_aliases(tracker.client, name, version, decision)
    tracker.client.set_tag(run_id, "promotion_decision", decision.reason)
    return {
        "model_name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "run_id": run_id,
        "aliases": aliases,
        "promotion": decision.reason,
        "gate_metric": gate.metric,
        "challenger_score": challenger_score,
        "champion_score": champion_score,
        "champion_version": version if decision.promote else (str(champion.version) if champion else None),
        "champion_unscorable": unscorable,
    }


def apply_aliases(
    client: MlflowClient, model_name: str, version: str, decision: PromotionDecision
) -> list[str]:
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    aliases = [CHALLENGER]
    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        _stamp_promotion(client, model_name, version, "gate")
        aliases.append(CHAMPION)
    client.set_model_version_tag(model_name, version, "promotion_decision", decision.reason)
    return aliases


def _stamp_promotion(client: MlflowClient, model_name: str, version: str, via: str) -> None:
    client.set_model_version_tag(model_name, version, PROMOTED_AT, pd.Timestamp.now("UTC").isoformat())
    client.set_model_version_tag(model_name, version, PROMOTED_VIA, via)


def promote_by_hand(client: MlflowClient, model_name: str, version: str, who: str, reason: str) -> str | None:
    """Set `champion` on `version` by a person's decision, recording who and why; returns the previous one."""
    target = client.get_model_version(model_name, version)  # raises if the version does not exist
    try:
        previous = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        previous = None
    client.set_registered_model_alias(model_name, CHAMPION, target.version)
    _stamp_promotion(client, model_name, str(target.version), "cli")
    client.set_model_version_tag(model_name, target.version, "promoted_by", who)
    client.set_model_version_tag(model_name, target.version, "promotion_reason", reason)
    client.set_model_version_tag(model_name, target.version, "promotion_decision", f"manual: {reason}")
    return str(previous.version) if previous else None
