"""The pipeline, defined once: every stage as data. The Prefect flows (flows/) and the bench's direct runner
execute it through trackflow.runner; dvc.yaml is generated from it (`trackflow dvc-yaml`); the tests check
that the committed dvc.yaml is what it generates and that every stage lists what its code reaches.

A stage is its name (the DVC stage name; `tune@genre` for one task), its function in the trackflow layer,
the `trackflow` command DVC runs for it (which calls that function), the files it reads and writes, and the
params.yaml keys that change its result. Its code and config dependencies are not written by hand: they are
found by reading the source (trackflow.codedeps) from the stage's function, so a module it starts to use
becomes a dependency the next time dvc.yaml is generated.
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from components.params import Params
from trackflow import discovery_stages, model_stages, stages
from trackflow.codedeps import Analyzer, ModuleIndex, Reach
from trackflow.paths import CONFIG_FILES, ProjectPaths

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
}
# Definitions whose reading of params is no input of any result: a hash of every parameter, as a run tag.
PARAMS_READ_FOR_TAGS_ONLY = (("trackflow.stages", "params_hash"),)


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
        """(stage, task) in run order: one task's stages all run before the next task's."""
        return [(s, None) for s in self.data] + [(s, t) for t in tasks for s in self.per_task]


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
    "train.profile",
    "train.profiles",
)

INGEST = Stage(
    "ingest",
    stages.ingest,
    ("ingest",),
    deps=(_p("raw_csv"),),
    outs=(Out(_p("interim_tracks")), Out(_p("ingest_meta"), cache=False)),
    params=(),
    about="Raw CSV -> typed listings; the unnamed row-index column is dropped here.",
)
VALIDATE = Stage(
    "validate",
    stages.validate,
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
    stages.featurize,
    ("featurize",),
    deps=(_p("validated_tracks"),),
    outs=(Out(_p("features")), Out(_p("featurize_meta"), cache=False)),
    params=("featurize",),
    about="One row per track_id, its genres as a set.",
)
SPLIT = Stage(
    "split",
    stages.split,
    ("split",),
    deps=(_p("features"),),
    outs=(Out(_p("splits")),),
    params=("split.seed", "split.test_size"),
    about="Grouped holdouts: by primary artist (the main protocol) and by track.",
)
TUNE = Stage(
    "tune",
    model_stages.tune_task,
    ("tune", "--task", "{task}"),
    deps=(_p("features"), _p("splits")),
    outs=(Out(_t("tuning")),),
    params=(*_MODEL_PARAMS, "train.families"),
    per_task=True,
    about="One Optuna study per family on grouped CV folds of the training rows (families side by side).",
)
TRAIN = Stage(
    "train",
    model_stages.fit_task,
    ("train", "--task", "{task}"),
    deps=(_t("tuning"), _p("features"), _p("splits")),
    outs=(Out(_t("task_models")), Out(_under(_p("reports"), "{task}", "tuning"), cache=False)),
    params=(
        *_MODEL_PARAMS,
        "train.families",
        "train.blend",
        "train.balanced_weights",
        "train.refit_validation_share",
    ),
    per_task=True,
    about="Final fits of every tuned family on both protocols; the CV winner (or the blend) is selected.",
)
EVALUATE = Stage(
    "evaluate",
    model_stages.evaluate_task,
    ("evaluate", "--task", "{task}"),
    deps=(_t("task_models"), _p("features"), _p("splits")),
    outs=(
        Out(_t("task_metrics"), cache=False, metric=True),
        Out(_under(_p("reports"), "{task}", "comparison.md"), cache=False),
    ),
    params=("evaluate", "split.protocol", "train.hit_threshold"),
    per_task=True,
    loads=TASK_MODEL_CLASSES,
    about="Every family on the untouched holdouts of both protocols: metrics, plots, a comparison table.",
)
REGISTER = Stage(
    "register",
    model_stages.register_task,
    ("register", "--task", "{task}"),
    deps=(_t("task_models"), _t("task_metrics"), _p("features"), _p("splits")),
    outs=(Out(_t("task_registration"), cache=False),),
    params=(
        "register",
        "split.protocol",
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
    discovery_stages.discover,
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
    discovery_stages.register_discovery,
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


# --- what each stage reaches -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageDeps:
    code: tuple[str, ...]  # project source files, relative to the root
    configs: tuple[str, ...]  # config files, relative to the root
    params_read: tuple[str, ...]  # params.yaml keys its code reads (operational ones included)
    hand_built_config_paths: tuple[str, ...]  # "configs/..." strings in its code: should go through paths


@cache
def _analyzer(root: Path) -> tuple[ModuleIndex, Analyzer]:
    index = ModuleIndex(root)
    return index, Analyzer(index, PARAMS_READ_FOR_TAGS_ONLY)


def stage_deps(stage: Stage, root: Path | str = CODE_ROOT) -> StageDeps:
    """The code (in CODE_ROOT), config files (in `root`) and params keys `stage`'s function reaches."""
    root = Path(root).resolve()
    index, analyzer = _analyzer(CODE_ROOT)
    reach: Reach = analyzer.reach(stage.entries)
    configs: list[str] = []
    for attribute in sorted(reach.attributes & set(CONFIG_FILES)):
        configs += config_files(root, CONFIG_FILES[attribute])
    hand_built = sorted(
        f"{module}: {text!r}"
        for module, text in reach.strings
        if module != ProjectPaths.__module__ and (text == "configs" or text.startswith("configs/"))
    )
    return StageDeps(
        code=tuple(reach.files(index)),
        configs=tuple(dict.fromkeys(configs)),
        params_read=tuple(sorted({schema_key(k) for k in reach.params_keys})),
        hand_built_config_paths=tuple(hand_built),
    )


def config_files(root: Path, relative: str) -> list[str]:
    """A config file and the files it names (`value_set_file: ../genres.txt` in the expectation suite)."""
    found = [relative]
    path = root / relative
    if path.suffix in (".yaml", ".yml") and path.is_file():
        for value in _values_of_file_keys(yaml.safe_load(path.read_text(encoding="utf-8"))):
            named = (path.parent / value).resolve().relative_to(root).as_posix()
            if named not in found:
                found.append(named)
    return found


def _values_of_file_keys(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).endswith("_file") and isinstance(value, str):
                yield value
            else:
                yield from _values_of_file_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of_file_keys(item)


def schema_key(key: str) -> str:
    """A key as read in code (`register.promotion_margin.get`) cut to the params.yaml key it is: the
    longest prefix that is a field path of Params (dict-valued fields end it)."""
    if key == "*":
        return key
    model: type[BaseModel] | None = Params
    kept: list[str] = []
    for part in key.split("."):
        if model is None:
            break
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        if part not in fields:
            break
        kept.append(part)
        model = _model_of(fields[part].annotation)
    return ".".join(kept) or key


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        if typing.get_origin(annotation) is dict:
            return None  # the keys of a dict are data, not schema
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def covers(declared: Iterable[str], key: str) -> bool:
    """Whether a declared key (`validate`, `train.seed`) covers a key read (`validate.min_rows`)."""
    return any(key == d or key.startswith(d + ".") for d in declared)


def undeclared_params(stage: Stage, root: Path | str = CODE_ROOT) -> list[str]:
    """Keys the stage's code reads that neither its params nor OPERATIONAL_PARAMS cover."""
    read = stage_deps(stage, root).params_read
    return [k for k in read if not covers(stage.params, k) and not covers(OPERATIONAL_PARAMS, k)]


# --- dvc.yaml ----------------------------------------------------------------------------------------------
DVC_HEADER = """\
# Generated from trackflow/pipeline.py by `trackflow dvc-yaml` (make dvc-yaml): do not edit by hand.
# tests/test_pipeline.py fails when this file differs from what the definition generates.
#
# Each stage runs the same `trackflow` command, and so the same stage function, as the Prefect flow's task.
# Code and config dependencies are what the stage's function reaches in the source (trackflow/codedeps.py);
# params are the keys that change its result (operational ones, such as the MLflow URI, are left out).
# Run with `make repro` (or `dvc repro` inside the activated .venv). After a `make run` whose parameters
# were exactly params.yaml, dvc.lock already holds the flow's outputs: `dvc repro` has nothing to do.
#
# The raw file is an input, not a stage: `make data` (trackflow fetch-data) puts it in data/raw/ from
# TRACKS_CSV or a download, and DVC tracks its content hash as the ingest stage's dependency.
"""


def _relative(path_of: PathOf, task: str) -> str:
    anchor = Path("/__project__")
    return path_of(ProjectPaths(anchor), task).relative_to(anchor).as_posix()


def stage_entry(stage: Stage, root: Path) -> dict[str, Any]:
    deps = stage_deps(stage, root)
    entry: dict[str, Any] = {
        "cmd": stage.cli(),
        "deps": [*(_relative(d, TASK_ITEM) for d in stage.deps), *deps.code, *deps.configs],
    }
    if stage.params:
        entry["params"] = list(stage.params)
    metrics = [o for o in stage.outs if o.metric]
    outs = [o for o in stage.outs if not o.metric]

    def listed(items: Sequence[Out]) -> list[Any]:
        return [
            _relative(o.path, TASK_ITEM) if o.cache else {_relative(o.path, TASK_ITEM): {"cache": False}}
            for o in items
        ]

    if metrics:
        entry["metrics"] = listed(metrics)
    if outs:
        entry["outs"] = listed(outs)
    if stage.per_task:
        return {"foreach": "${train.tasks}", "do": entry}
    return entry


def render_dvc_yaml(root: Path | str) -> str:
    """dvc.yaml as the definition generates it for the checkout at `root`."""
    root = Path(root).resolve()
    blocks = [DVC_HEADER, "stages:"]
    for stage in STAGES:
        body = yaml.safe_dump({stage.name: stage_entry(stage, root)}, sort_keys=False, width=110)
        lines = [f"  # {stage.about}"] if stage.about else []
        lines += ["  " + line if line else line for line in body.rstrip("\n").split("\n")]
        blocks.append("\n".join(lines))
    return "\n".join(blocks[:2]) + "\n" + "\n\n".join(blocks[2:]) + "\n"


def check_definition() -> None:
    """Every declared params key is a key of params.yaml's schema, and none is operational."""
    for stage in STAGES:
        for key in stage.params:
            if schema_key(key) != key:
                raise PipelineError(f"stage {stage.name}: params key {key!r} is not in params.yaml")
            if covers(OPERATIONAL_PARAMS, key):
                raise PipelineError(f"stage {stage.name}: {key!r} is operational, not a DVC param")


# --- the state a run records -------------------------------------------------------------------------------
def inputs_fingerprint(root: Path | str, pipelines: Sequence[Pipeline] = PIPELINES) -> str:
    """A hash of what a run's results depend on besides its data: params.yaml, dvc.yaml, every code and
    config file a stage reaches. Taken at a run's start and end: equal, nothing changed underneath it."""
    root = Path(root).resolve()
    files = {root / "params.yaml", root / "dvc.yaml"}
    for pipeline in pipelines:
        for stage in pipeline.stages:
            deps = stage_deps(stage, root)
            files.update(CODE_ROOT / name for name in deps.code)
            files.update(root / name for name in deps.configs)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()
