"""The pipeline, defined once: every stage as data. The Prefect flows (flows/) and the bench's direct runner
execute it through trackflow.runner; dvc.yaml is generated from it (`trackflow dvc-yaml`, with
trackflow/dependencies.py); the tests check that the committed dvc.yaml is what it generates and that every
stage lists what its code reaches.

A stage is its name (the DVC stage name; `tune@genre` for one task), its function in the trackflow layer,
the `trackflow` command DVC runs for it (which calls that function), the files it reads and writes, and the
params.yaml keys that change its result. Its code and config dependencies are not written by hand: they are
found by reading the source (trackflow.codedeps) from the stage's function, so a module it starts to use
becomes a dependency the next time dvc.yaml is generated.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.tasks import TASK_SPECS
from trackflow.paths import ProjectPaths
from trackflow.stages.data import featurize, ingest, split, validate
from trackflow.stages.discovery.discover import discover
from trackflow.stages.discovery.register import register_discovery
from trackflow.stages.evaluate import evaluate_task
from trackflow.stages.register import register_task
from trackflow.stages.train import fit_task
from trackflow.stages.tune import tune_task

PathOf = Callable[[ProjectPaths, str], Path]  # (paths, task) -> a file or folder


# The checkout whose code runs: code dependencies are read here, config files in the project's root.
CODE_ROOT = Path(__file__).resolve().parents[1]


TASK_ITEM = "${item}"  # how a per-task path is written in dvc.yaml's foreach


# params.yaml keys that say where or how a stage runs, never what it computes, so they are not DVC params:
# changing one must not rerun anything. Each with the reason.
OPERATIONAL_PARAMS: dict[str, str] = {
    "mlflow": "where runs and models are logged (tracking URI, artifact folder, experiment name)",
    "fetch": "where the raw file is downloaded from; its content hash is the ingest stage's dependency",
    "score.incoming_dir": "a folder to poll",
    "score.chunk_rows": "rows per read: memory, not results",
    "audio.workers": "a worker count",
    "runs": "how long a run waits for another run's project lock",
    "serve": "the model server's address, polling interval, request limits and log folder",
}


# Definitions whose reading of params is no input of any result: a hash of every parameter, as a run tag.
PARAMS_READ_FOR_TAGS_ONLY = (("trackflow.stages.common", "params_hash"),)


@dataclass(frozen=True)
class Out:
    """One output of a stage. `cache=False`: small files DVC tracks by hash but does not copy to its cache
    (summaries, reports); `metric`: listed under `metrics:` so that `dvc metrics diff` shows it."""

    path: PathOf
    cache: bool = True
    metric: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    function: Callable[..., dict[str, Any]]
    command: tuple[str, ...]  # `trackflow` arguments; "{task}" stands for the task of a per-task stage
    deps: tuple[PathOf, ...]
    outs: tuple[Out, ...]
    params: tuple[str, ...]
    per_task: bool = False
    about: str = ""  # one line, written above the stage in dvc.yaml
    # Classes of the pickled models it loads: their code runs (predict, transform) though no import of the
    # stage names it, so they are entry points of its code dependencies too.
    loads: tuple[tuple[str, str], ...] = ()

    @property
    def entries(self) -> tuple[tuple[str, str], ...]:
        return ((self.function.__module__, self.function.__name__), *self.loads)

    def label(self, task: str | None = None) -> str:
        """The DVC stage name: `tune@genre` for one task of a per-task stage."""
        return f"{self.name}@{task}" if self.per_task and task else self.name

    def cli(self, task: str | None = None) -> str:
        return "trackflow " + " ".join(part.replace("{task}", task or TASK_ITEM) for part in self.command)

    @property
    def fans_out(self) -> bool:
        """Whether the function runs parts side by side (`parts=`): the families of tune, the discovery
        parts. A runner gives it its own way of running them; see trackflow.runner."""
        return "parts" in inspect.signature(self.function).parameters


@dataclass(frozen=True)
class Pipeline:
    """Stages in the order they run: `data` once, then `per_task` for each task of params.yaml."""

    name: str
    data: tuple[Stage, ...]
    per_task: tuple[Stage, ...] = ()

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.data + self.per_task

    def plan(self, tasks: Iterable[str]) -> list[tuple[Stage, str | None]]:
        """(stage, task) in run order: one task's stages all run before the next task's, the task whose
        answer stands for a missing input (genre) first, as scoring runs them."""
        ordered = sorted(tasks, key=lambda t: TASK_SPECS[t].answers_input is None)
        return [(s, None) for s in self.data] + [(s, t) for t in ordered for s in self.per_task]


def _p(attribute: str) -> PathOf:
    """A ProjectPaths property as a path of the stage (the same for every task)."""
    return lambda paths, _task: getattr(paths, attribute)


def _t(method: str) -> PathOf:
    """A per-task ProjectPaths method (`tuning(task)`) as a path of the stage."""
    return lambda paths, task: getattr(paths, method)(task)


def _under(base: PathOf, *parts: str) -> PathOf:
    return lambda paths, task: base(paths, task).joinpath(*(p.replace("{task}", task) for p in parts))


# A saved task model: the wrapper, the blend, the fitted features and every family's estimator.
TASK_MODEL_CLASSES = (
    ("components.task_model", "TaskModel"),
    ("components.task_model", "BlendModel"),
    ("components.features", "TrackFeaturizer"),
    ("components.families", "FAMILIES"),
)


DISCOVERY_MODEL_CLASSES = (
    ("components.discovery.clusters", "TrackClusterer"),
    ("components.discovery.outliers", "OutlierDetector"),
    ("components.discovery.similarity", "SimilarityIndex"),
    ("components.discovery.pyfunc", "SimilarTracksModel"),
)


_MODEL_PARAMS = (
    "split.protocol",
    "train.seed",
    "train.device",
    "train.hit_threshold",
    "train.feature_groups",
    "train.names",
    "train.artist_mask_share",
    "train.profile",
    "train.profiles",
)


INGEST = Stage(
    "ingest",
    ingest,
    ("ingest",),
    deps=(_p("raw_csv"),),
    outs=(Out(_p("interim_tracks")), Out(_p("ingest_meta"), cache=False)),
    params=(),
    about="Raw CSV -> typed listings; the unnamed row-index column is dropped here.",
)


VALIDATE = Stage(
    "validate",
    validate,
    ("validate",),
    deps=(_p("interim_tracks"), _p("ingest_meta")),
    outs=(
        Out(_p("validated_tracks")),
        Out(_under(_p("quarantine_dir"), "quarantined.parquet")),
        Out(_p("validation_summary"), cache=False),
        Out(_under(_p("reports"), "validation", "report.html"), cache=False),
    ),
    params=("validate",),
    about="The Great Expectations gate: a bad batch stops the chain, a few bad rows are quarantined.",
)


FEATURIZE = Stage(
    "featurize",
    featurize,
    ("featurize",),
    # The labels that came back (`trackflow label`): merged in, a newer label for a track replacing the older.
    deps=(_p("validated_tracks"), _p("labels_dir")),
    outs=(Out(_p("features")), Out(_p("featurize_meta"), cache=False)),
    params=("featurize", "validate"),
    about="One row per track_id, its genres as a set; labelled rows merged in.",
)


SPLIT = Stage(
    "split",
    split,
    ("split",),
    deps=(_p("features"),),
    outs=(Out(_p("splits")),),
    params=("split.seed", "split.test_size"),
    about="Grouped holdouts: by primary artist (the main protocol) and by track.",
)


TUNE = Stage(
    "tune",
    tune_task,
    ("tune", "--task", "{task}"),
    deps=(_p("features"), _p("splits")),
    outs=(Out(_t("tuning")),),
    params=(*_MODEL_PARAMS, "train.families"),
    per_task=True,
    about="One Optuna study per family on grouped CV folds of the training rows (families side by side).",
)


TRAIN = Stage(
    "train",
    fit_task,
    ("train", "--task", "{task}"),
    deps=(_t("tuning"), _p("features"), _p("splits")),
    outs=(Out(_t("task_models")), Out(_under(_p("reports"), "{task}", "tuning"), cache=False)),
    params=(
        *_MODEL_PARAMS,
        "train.families",
        "train.blend",
        "train.balanced_weights",
        "train.refit_validation_share",
        "train.baseline",
        "train.explain_background_rows",
        "train.calibration",
    ),
    per_task=True,
    about="Final fits of every tuned family on both protocols; the CV winner (or the blend) is selected.",
)


EVALUATE = Stage(
    "evaluate",
    evaluate_task,
    ("evaluate", "--task", "{task}"),
    deps=(_t("task_models"), _p("features"), _p("splits")),
    outs=(
        Out(_t("task_metrics"), cache=False, metric=True),
        Out(_under(_p("reports"), "{task}", "comparison.md"), cache=False),
    ),
    params=("evaluate", "split.protocol", "train.hit_threshold", "train.tasks", "train.seed"),
    per_task=True,
    loads=TASK_MODEL_CLASSES,
    about="Every family on the untouched holdouts of both protocols: metrics, plots, a comparison table.",
)


REGISTER = Stage(
    "register",
    register_task,
    ("register", "--task", "{task}"),
    # The labels: the newest labelled batch is the forward holdout; featurize's summary says up to when the
    # training rows knew the labels (a version tag the monitor reads).
    deps=(
        _t("task_models"),
        _t("task_metrics"),
        _p("features"),
        _p("splits"),
        _p("labels_dir"),
        _p("featurize_meta"),
    ),
    outs=(Out(_t("task_registration"), cache=False),),
    params=(
        "register",
        "split.protocol",
        "train.tasks",
        "train.hit_threshold",
        "train.feature_groups",
        "train.profile",
        "train.seed",
    ),
    per_task=True,
    loads=TASK_MODEL_CLASSES,
    about="A new MLflow model version: challenger always, champion only when it wins on the same holdout.",
)


DISCOVER = Stage(
    "discover",
    discover,
    ("discover",),
    deps=(_p("features"), _p("splits")),
    outs=(
        Out(_p("discovery_metrics"), cache=False, metric=True),
        Out(_p("discovery")),
        Out(_p("discovery_reports"), cache=False),
    ),
    params=(
        "split.protocol",
        "discovery.seed",
        "discovery.features",
        "discovery.clusters",
        "discovery.density",
        "discovery.outliers",
        "discovery.similar",
        "discovery.playlist",
        "discovery.map",
    ),
    about="Clusters, outliers, similar-track index, playlists and the map, fitted on the training tracks.",
)


REGISTER_DISCOVERY = Stage(
    "register-discovery",
    register_discovery,
    ("register-discovery",),
    deps=(_p("discovery"), _p("discovery_metrics"), _p("features"), _p("splits")),
    outs=(Out(_p("discovery_registration"), cache=False),),
    params=("split.protocol", "discovery"),
    loads=DISCOVERY_MODEL_CLASSES,
    about="clusters, outliers and similar-tracks in the registry, behind the same champion gate.",
)


TRAINING = Pipeline(
    "training", data=(INGEST, VALIDATE, FEATURIZE, SPLIT), per_task=(TUNE, TRAIN, EVALUATE, REGISTER)
)


DISCOVERY = Pipeline("discovery", data=(DISCOVER, REGISTER_DISCOVERY))


# The data stages the discovery flow runs first when their outputs are missing.
DISCOVERY_PREREQUISITES = TRAINING.data


PIPELINES = (TRAINING, DISCOVERY)


STAGES: tuple[Stage, ...] = tuple(s for p in PIPELINES for s in p.stages)


class PipelineError(ValueError):
    """The pipeline definition and params.yaml, dvc.yaml or the code disagree."""
