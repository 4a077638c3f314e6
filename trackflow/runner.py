"""Runs the pipeline definition (trackflow.pipeline) with a backend that says how a stage and its parts run:
directly in this process (the bench's direct runner; `run_training(..., DirectBackend())`) or as Prefect
tasks (flows/). Both get the same order, the same MLflow parent run, the same failure rules, the same
per-stage wall times and the same bookkeeping of DVC's state, so the flows hold wiring only.

params.yaml is read once per run (`load_run_params`) and the frozen object goes to every stage. After a run
that used exactly params.yaml, in which nothing failed and no study hit its wall-clock safety net, the
stages it ran are recorded in dvc.lock (`dvc commit`), so `dvc status` is clean and `dvc repro` has nothing
to do until an input changes; any other run leaves dvc.lock alone and its summary says why.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.params import Params
from components.schema import PROTOCOLS
from components.tasks import GENRE_PREDICTED
from trackflow.config import ParamsError, load_params
from trackflow.dependencies import inputs_fingerprint, render_dvc_yaml, stage_deps
from trackflow.lock import project_lock
from trackflow.parts import PARALLEL_PARTS, PartFunction, PartOutcome, Parts, ThreadParts
from trackflow.paths import ProjectPaths
from trackflow.pipeline import CODE_ROOT, DISCOVERY, DISCOVERY_PREREQUISITES, STAGES, TRAINING, Stage
from trackflow.stages.data import fetch_data
from trackflow.tracking import Tracker

log = logging.getLogger("trackflow")


# --- parameters, once per run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunParams:
    """The parameters of one run: params.yaml as loaded once, with any override a caller asked for."""

    params: Params
    overrides: tuple[str, ...] = ()  # what differs from params.yaml, in words


def load_run_params(paths: ProjectPaths, profile: str | None = None) -> RunParams:
    """params.yaml, validated, with `--profile` applied; a profile the file lacks is a ParamsError."""
    if not paths.params.is_file():
        raise ParamsError(f"{paths.params}: parameters file not found (run from the repository root)")
    params = load_params(paths.params)
    overrides: list[str] = []
    if profile is not None and profile != params.train.profile:
        if profile not in params.train.profiles:
            raise ParamsError(
                f"--profile {profile!r} is not one of train.profiles {sorted(params.train.profiles)}"
            )
        overrides.append(f"tuning profile {profile!r} instead of params.yaml's {params.train.profile!r}")
        params = params.model_copy(update={"train": params.train.model_copy(update={"profile": profile})})
    return RunParams(params, tuple(overrides))


# --- how stages and parts run ------------------------------------------------------------------------------
class Backend(Protocol):
    def stage(self, label: str, call: Callable[[], dict[str, Any]], fans_out: bool) -> dict[str, Any]:
        """Run one stage (`call()`); a stage that fans out runs its parts through `parts()`."""
        ...

    def parts(self) -> Parts: ...


@dataclass(frozen=True)
class DirectBackend:
    """Stages called in this thread, parts on a thread pool of the size the flows' task runner has."""

    workers: int = PARALLEL_PARTS

    def stage(self, label: str, call: Callable[[], dict[str, Any]], fans_out: bool) -> dict[str, Any]:
        del label, fans_out
        return call()

    def parts(self) -> Parts:
        return ThreadParts(self.workers)


@dataclass
class StageTiming:
    stage: str  # the DVC stage name (tune, train, ...)
    task: str | None
    part: str | None  # a family of tune, a part of discover
    start_s: float
    end_s: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "task": self.task,
            "part": self.part,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "ok": self.ok,
        }


class _Clock:
    """Wall time of every stage and part, from the run's start; parts finish on several threads."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self.records: list[StageTiming] = []
        self._lock = threading.Lock()

    def timed(self, stage: str, task: str | None, part: str | None, call: Callable[[], Any]) -> Any:
        start = time.perf_counter() - self.origin
        ok = False
        try:
            result = call()
            ok = True
            return result
        finally:
            record = StageTiming(stage, task, part, start, time.perf_counter() - self.origin, ok)
            with self._lock:
                self.records.append(record)


@dataclass(frozen=True)
class _TimedParts:
    inner: Parts
    clock: _Clock
    stage: str
    task: str | None

    def map(self, label: str, function: PartFunction, items: Sequence[str]) -> dict[str, PartOutcome]:
        def timed(item: str) -> dict[str, Any]:
            return self.clock.timed(self.stage, self.task, item, lambda: function(item))

        return self.inner.map(label, timed, items)


# --- one run -----------------------------------------------------------------------------------------------
@dataclass
class PipelineRun:
    """One run of stages: its MLflow parent run, its clock, and what keeps it out of dvc.lock."""

    paths: ProjectPaths
    run_params: RunParams
    backend: Backend
    name: str  # the MLflow parent run's name: training-flow, training-direct, discovery-flow
    tags: dict[str, str] = field(default_factory=dict)
    logger: logging.Logger | logging.LoggerAdapter[Any] = log
    clock: _Clock = field(default_factory=_Clock)
    ran: list[str] = field(default_factory=list)  # DVC stage names, in order
    not_reproducible: list[str] = field(default_factory=list)
    parent_run_id: str | None = None
    _fingerprint: str = ""

    @property
    def params(self) -> Params:
        return self.run_params.params

    def locked(self) -> AbstractContextManager[None]:
        """The project lock (trackflow/lock.py), held from before the first read to after dvc.lock is
        written: one writer of the stage outputs at a time."""
        return project_lock(self.paths, f"{self.name} run", self.params.runs.lock_wait_s, self.logger)

    def __enter__(self) -> PipelineRun:
        self._fingerprint = inputs_fingerprint(self.paths.root)
        self._tracked = Tracker.for_project(self.paths, self.params).run(self.name, tags=self.tags)
        self.parent_run_id = self._tracked.__enter__().id
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> bool | None:
        # The parent MLflow run ends FAILED when a stage raised, FINISHED otherwise (tracking.Tracker.run).
        return self._tracked.__exit__(exc_type, exc, traceback)

    def stage(self, stage: Stage, task: str | None = None) -> dict[str, Any]:
        accepts = inspect.signature(stage.function).parameters
        kwargs: dict[str, Any] = {}
        if stage.per_task:
            kwargs["task"] = task
        if "parent_run_id" in accepts:
            kwargs["parent_run_id"] = self.parent_run_id
        if stage.fans_out:
            kwargs["parts"] = _TimedParts(self.backend.parts(), self.clock, stage.name, task)

        def call() -> dict[str, Any]:
            return stage.function(self.paths, self.params, **kwargs)

        label = stage.label(task)
        self.logger.info("stage %s", label)
        result = self.clock.timed(
            stage.name, task, None, lambda: self.backend.stage(label, call, stage.fans_out)
        )
        self.ran.append(label)
        return result

    def timings(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in sorted(self.clock.records, key=lambda r: r.start_s)]

    def record_dvc_state(self) -> dict[str, Any]:
        """dvc.lock gets the stages this run ran when the run is what `dvc repro` would have produced."""
        reasons = [*self.run_params.overrides, *self.not_reproducible]
        if inputs_fingerprint(self.paths.root) != self._fingerprint:
            reasons.append("params.yaml, dvc.yaml or the code changed while the run was going")
        outcome = record_in_dvc_lock(self.paths, self.ran, reasons)
        if outcome["recorded"]:
            self.logger.info("dvc.lock: recorded %d stages (dvc status is clean)", len(outcome["stages"]))
        else:
            self.logger.warning("dvc.lock left alone: %s", outcome["reason"])
        return outcome


def record_in_dvc_lock(paths: ProjectPaths, labels: Sequence[str], reasons: Sequence[str]) -> dict[str, Any]:
    """`dvc commit` of `labels` unless `reasons` (or the project itself) say the outputs are not what
    dvc.yaml's commands would produce from today's inputs."""
    reasons = list(reasons)
    if not reasons:
        if not paths.dvc_yaml.is_file() or not (paths.root / ".dvc").is_dir():
            reasons.append(f"{paths.root} is not a DVC project (no dvc.yaml and .dvc/)")
        elif differing := code_not_in_project(paths.root):
            reasons.append(
                f"the code that ran ({CODE_ROOT}) differs from this project's in {', '.join(differing[:5])}"
            )
        elif paths.dvc_yaml.read_text(encoding="utf-8") != render_dvc_yaml(paths.root):
            reasons.append("dvc.yaml is not what trackflow/pipeline.py generates: run `trackflow dvc-yaml`")
    if reasons:
        return {"recorded": False, "reason": "; ".join(reasons), "stages": []}
    command = [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *labels]
    done = subprocess.run(command, cwd=paths.root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-1000:]
        return {"recorded": False, "reason": f"`dvc commit` failed: {detail}", "stages": []}
    return {"recorded": True, "reason": "", "stages": list(labels)}


def code_not_in_project(root: Path) -> list[str]:
    """Code files of the stages whose running copy (CODE_ROOT) is not byte for byte the project's: dvc.lock
    would record the project's files as the code of outputs that other code produced."""
    if root.resolve() == CODE_ROOT:
        return []
    files = sorted({name for stage in STAGES for name in stage_deps(stage, root).code})
    return [name for name in files if _bytes(CODE_ROOT / name) != _bytes(root / name)]


def _bytes(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


# --- the two pipelines -------------------------------------------------------------------------------------
def run_training(
    paths: ProjectPaths,
    run_params: RunParams,
    backend: Backend,
    *,
    runner: str,
    fetch: bool = False,
    reason: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> dict[str, Any]:
    """ingest -> validate -> featurize -> split, then per task tune (families side by side) -> train ->
    evaluate -> register. `reason` says why it runs (a drift retrain passes the drifted columns); it is
    recorded on the MLflow run, and such a run is not recorded in dvc.lock."""
    params = run_params.params
    tags = {"runner": runner, "profile": params.train.profile, "trigger": "drift" if reason else "request"}
    if reason:
        tags["retrain_reason"] = reason[:5000]  # MLflow tag values are bounded
        logger.warning("retraining: %s", reason)
    run = PipelineRun(paths, run_params, backend, _run_name("training", runner), tags, logger)
    if reason:
        run.not_reproducible.append("a drift-triggered retrain")
    result: dict[str, Any] = {"tasks": {}}
    with run.locked():
        _training_stages(run, result, backend, fetch, logger)
        result["dvc"] = run.record_dvc_state()
    result["overrides"] = list(run_params.overrides)
    result["timings"] = run.timings()
    return result


def _training_stages(
    run: PipelineRun, result: dict[str, Any], backend: Backend, fetch: bool, logger: Any
) -> None:
    paths, params = run.paths, run.params
    with run:
        result["mlflow_parent_run_id"] = run.parent_run_id
        if fetch:
            result["fetch"] = backend.stage("fetch_data", lambda: fetch_data(paths, params), False)
        for stage, task in TRAINING.plan(params.train.tasks):
            outcome = run.stage(stage, task)
            if task is None:
                result[stage.name] = outcome
                _log_data_stage(logger, stage.name, outcome)
                continue
            per_task = result["tasks"].setdefault(task, {"failed": {}})
            per_task[stage.name] = outcome
            if stage.name == "tune":
                per_task["failed"] = outcome["failed"]
                run.not_reproducible += [f"{task}/{f} failed" for f in outcome["failed"]]
                run.not_reproducible += [
                    f"{task}/{f} stopped on its wall-clock limit, not its trial count"
                    for f in outcome["stopped_by_timeout"]
                ]
                run.not_reproducible += [
                    f"{task}/{f} resumed a study that a killed run left (its later trials differ)"
                    for f, study in outcome["studies"].items()
                    if study and study.get("abandoned_trials")
                ]
            if stage.name == "register":
                logger.info("%s: registered v%s %s", task, outcome["version"], outcome["aliases"])


def run_discovery(
    paths: ProjectPaths,
    run_params: RunParams,
    backend: Backend,
    *,
    runner: str,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> dict[str, Any]:
    """The data stages when their outputs are missing, then discover (parts side by side) -> register."""
    run = PipelineRun(paths, run_params, backend, _run_name("discovery", runner), {"runner": runner}, logger)
    result: dict[str, Any] = {}
    with run.locked():
        with run:
            result["mlflow_parent_run_id"] = run.parent_run_id
            if not (paths.features.is_file() and paths.splits.is_file()):
                prerequisites = _names(DISCOVERY_PREREQUISITES)
                logger.info("no per-track table or splits yet: running %s first", prerequisites)
                for stage in DISCOVERY_PREREQUISITES:
                    result[stage.name] = run.stage(stage)
            for stage, _ in DISCOVERY.plan(()):
                result[stage.name] = run.stage(stage)
        result["dvc"] = run.record_dvc_state()
    result["timings"] = run.timings()
    return result


def _run_name(pipeline: str, runner: str) -> str:
    """The MLflow parent run's name: training-flow for a Prefect run, training-direct, ..."""
    return f"{pipeline}-{'flow' if runner == 'prefect' else runner}"


def _names(stages_: Sequence[Stage]) -> str:
    return " -> ".join(s.name for s in stages_)


def _log_data_stage(logger: Any, name: str, outcome: dict[str, Any]) -> None:
    if name == "ingest":
        logger.info("ingested %s rows", outcome["rows"])
    elif name == "validate":
        logger.info(
            "validation: %s valid, %s quarantined", outcome["rows_valid"], outcome["rows_quarantined"]
        )


# --- what a person reads at the end ------------------------------------------------------------------------
def format_training_summary(result: dict[str, Any]) -> str:
    ingested, validated = result["ingest"], result["validate"]
    lines = [
        "training flow finished",
        f"  rows in:        {ingested['rows']:,} listing rows (data hash {ingested['content_hash'][:12]})",
        f"  rows validated: {validated['rows_valid']:,} (quarantined {validated['rows_quarantined']:,})",
        f"  tracks used:    {result['featurize']['tracks_out']:,} one row per track_id",
    ]
    for task_name, outcome in result["tasks"].items():
        metrics, registered = outcome["evaluate"], outcome["register"]
        gate = registered["gate_metric"]
        main = metrics["main_protocol"]
        other = next(p for p in PROTOCOLS if p != main)
        selected = metrics["selected"]
        main_score, other_score = metrics[main][selected][gate], metrics[other][selected][gate]
        failed = ", ".join(outcome["failed"]) or "none"
        lines.append(
            f"  {task_name:<10} {selected:<13} {gate} {main_score:.4f} ({main} holdout)"
            f" / {other_score:.4f} ({other}); failed families: {failed}"
        )
        if guessed := metrics.get(GENRE_PREDICTED, {}).get(main, {}).get(selected):
            lines.append(f"  {'':<10} no genre given (as scored): {gate} {guessed[gate]:.4f} ({main})")
        if subsets := metrics.get("album_subsets"):
            by_album = [subsets["given"][s].get(selected) for s in ("album_unseen", "album_shared")]
            scores = " / ".join("undefined" if m is None else f"{m[gate]:.4f}" for m in by_album)
            lines.append(
                f"  {'':<10} {subsets['protocol']} holdout by album (unseen / shared, "
                f"{subsets['tracks']['album_shared']:,} shared): {gate} {scores}"
            )
        version, aliases = registered["version"], registered["aliases"]
        lines.append(f"  {'':<10} registered v{version} {aliases}: {registered['promotion']}")
        timed_out = outcome["tune"]["stopped_by_timeout"]
        lines.append(
            f"  {'':<10} tuning: "
            + (
                f"wall-clock limit hit by {', '.join(timed_out)} (fewer trials than asked)"
                if timed_out
                else "every study ran its trial count"
            )
        )
    lines.append("  " + format_dvc_state(result["dvc"]))
    return "\n".join(lines)


def format_dvc_state(dvc: dict[str, Any]) -> str:
    if dvc["recorded"]:
        return f"dvc.lock: {len(dvc['stages'])} stages recorded; `dvc repro` has nothing to do"
    return f"dvc.lock left alone: {dvc['reason']}"
