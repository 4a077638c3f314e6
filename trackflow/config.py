"""The configuration files, read into typed objects: params.yaml (components/params.py is its schema; a run
reads it once, trackflow/runner.py, and hands the frozen object to every stage), the model families' search
spaces (configs/families.yaml) and the expectation suite (configs/expectations/tracks.yaml with the value
sets it names). Reading the files is here; what their content means is in components."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import ValidationError

from components.families import FAMILIES, SearchSpace, parse_search_spaces
from components.params import Params
from components.tasks import TASKS, TaskKind
from components.validation import SuiteConfig, SuiteConfigError, parse_suite


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or does not match the schema."""


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; the error names the file and every offending key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ParamsError(f"{path}: {problems}") from exc
    # A family is a key of components.families.FAMILIES, a task one of components.tasks.TASK_SPECS: checked
    # here, where both registries are known.
    unknown_families = [f for f in params.train.families if f not in FAMILIES]
    if unknown_families:
        raise ParamsError(f"{path}: train.families: unknown {unknown_families}; known: {', '.join(FAMILIES)}")
    unknown = [t for t in params.train.tasks if t not in TASKS]
    unknown += [t for t in params.registry.promotion_margin if t not in TASKS]
    if unknown:
        known = ", ".join(TASKS)
        raise ParamsError(
            f"{path}: train.tasks / register.promotion_margin: unknown task(s) {unknown}; known: {known}"
        )
    return params


def load_search_spaces(
    path: Path | str,
    task: TaskKind | None = None,
    profile: str | None = None,
    known_profiles: Collection[str] | None = None,
) -> dict[str, SearchSpace]:
    """configs/families.yaml -> family -> {param: ParamSpec} (components.families.parse_search_spaces)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the search spaces ({exc})") from exc
    return parse_search_spaces(raw, str(path), task, profile, known_profiles)


def load_suite(path: Path | str, *, for_scoring: bool = False) -> SuiteConfig:
    """The expectation suite (configs/expectations/tracks.yaml) and the value-set files it names."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteConfigError(f"{path}: cannot read the expectation suite ({exc})") from exc
    value_sets: dict[str, list[str]] = {}
    for rule in (raw.get("rows") or []) if isinstance(raw, dict) else []:
        name = rule.get("value_set_file") if isinstance(rule, dict) else None
        if name is None:
            continue
        try:
            value_sets[name] = (path.parent / name).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SuiteConfigError(f"{path}: value_set_file {path.parent / name} ({exc})") from exc
    return parse_suite(raw, str(path), value_sets, for_scoring=for_scoring)
