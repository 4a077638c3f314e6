"""What each stage of trackflow/pipeline.py depends on, read from the source (trackflow/codedeps.py): its
code and config files and the params.yaml keys it reads; the checks of the definition against them; the
generated dvc.yaml; the fingerprint of a run's inputs."""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from components.params import Params
from trackflow.codedeps import Analyzer, ModuleIndex, Reach
from trackflow.paths import CONFIG_FILES, ProjectPaths
from trackflow.pipeline import (
    CODE_ROOT,
    OPERATIONAL_PARAMS,
    PARAMS_READ_FOR_TAGS_ONLY,
    PIPELINES,
    STAGES,
    TASK_ITEM,
    Out,
    PathOf,
    Pipeline,
    PipelineError,
    Stage,
)


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
        if module != ProjectPaths.__module__
        and " " not in text  # a path, not a sentence that names one
        and (text == "configs" or text.startswith("configs/"))
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


# A task name ProjectPaths accepts, standing for dvc.yaml's `${item}` until the path is written.
_ITEM_STAND_IN = "TASKITEM"


def _relative(path_of: PathOf, task: str) -> str:
    anchor = Path("/__project__")
    stand_in = _ITEM_STAND_IN if task == TASK_ITEM else task
    relative = path_of(ProjectPaths(anchor), stand_in).relative_to(anchor).as_posix()
    return relative.replace(_ITEM_STAND_IN, TASK_ITEM)


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
