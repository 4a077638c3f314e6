"""Search spaces: one range (or fixed value) per hyperparameter, parsed from the `families:` mapping of
configs/families.yaml (trackflow/config.py reads the file) and checked against the families' parameters."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from components.tasks import TASK_KINDS, TaskKind

if TYPE_CHECKING:
    import optuna

    from components.families.base import Family


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter's search range. A fixed value is a categorical with a single choice: Optuna
    records it in the trial's params (so best_params is complete) without searching it."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} parameter needs low and high")
            for bound in (self.low, self.high, self.step):
                # YAML 1.1 reads `1e-3` as a string: say so rather than fail later inside Optuna.
                if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                    raise ValueError(f"bound {bound!r} is not a number (write 0.001 or 1.0e-3, not 1e-3)")
            if self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
            if self.log and self.step is not None:
                raise ValueError("step and log cannot be combined")
            if self.choices is not None:
                raise ValueError(f"{self.type} parameter takes low/high, not choices")
            if self.type == "int" and not all(
                float(v).is_integer() for v in (self.low, self.high, self.step or 1)
            ):
                raise ValueError("int parameter bounds and step must be integers")
        elif self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameter needs a non-empty list of choices")
            if any(v is not None for v in (self.low, self.high, self.step)) or self.log:
                raise ValueError("categorical parameter takes choices only")
            for choice in self.choices:
                if choice is not None and not isinstance(choice, bool | int | float | str):
                    raise ValueError(f"categorical choice {choice!r} must be None, bool, int, float or str")
        else:
            raise ValueError(f"unknown parameter type {self.type!r}: int, float or categorical")

    @classmethod
    def fixed(cls, value: Any) -> ParamSpec:
        return cls(type="categorical", choices=(value,))


SearchSpace = dict[str, ParamSpec]
_SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}


def _parse_spec(where: str, raw: Any) -> ParamSpec:
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            raise ValueError(f"{where}: a list is ambiguous; write {{type: categorical, choices: [...]}}")
        return ParamSpec.fixed(raw)  # a scalar is a fixed value
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; a range takes {sorted(_SPEC_KEYS)}")
    try:
        choices = raw.get("choices")
        return ParamSpec(
            type=raw.get("type", "categorical" if choices is not None else ""),
            low=raw.get("low"),
            high=raw.get("high"),
            log=bool(raw.get("log", False)),
            step=raw.get("step"),
            choices=tuple(choices) if choices is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def parse_families(
    raw: Mapping[str, Any],
    source: str,
    families: Mapping[str, Family],
    task: TaskKind | None = None,
    profile: str | None = None,
    known_profiles: Collection[str] | None = None,
) -> dict[str, SearchSpace]:
    """configs/families.yaml's content -> family -> {param: ParamSpec}; `source` names the file in errors.

    Layout: `families: {<name>: {space: {...}, overrides: {<task kind>: {...}},
    profiles: {<tuning profile>: {<task kind>: {...}}}}}`. A parameter is either a range
    (`{type, low, high, log, step}` or `{type: categorical, choices}`) or a scalar (fixed). With `task`,
    that task's overrides replace or add entries (e.g. cheaper ranges for the 114-class task); with
    `profile` too, that profile's entries for the task go on top (e.g. wider ranges for `--profile full`).
    The file must name exactly the given families, only parameters each family's build accepts and,
    when `known_profiles` is given (train.profiles of params.yaml), only those profiles.
    """
    path = source
    raw = raw or {}
    if set(raw) != {"families"}:
        raise ValueError(f"{path}: expected a single top-level key 'families', found {sorted(raw)}")
    blocks = raw["families"] or {}
    unknown_families = sorted(set(blocks) - set(families))
    missing_families = sorted(set(families) - set(blocks))
    if unknown_families or missing_families:
        raise ValueError(
            f"{path}: families must match the registry {sorted(families)}: "
            f"unknown {unknown_families}, missing {missing_families}"
        )
    spaces: dict[str, SearchSpace] = {}
    for name, block in blocks.items():
        family = families[name]
        block = block or {}
        extra_keys = sorted(set(block) - {"space", "overrides", "profiles"})
        if extra_keys:
            raise ValueError(
                f"{path}: {name}: unknown keys {extra_keys}; expected 'space', 'overrides' and 'profiles'"
            )
        by_profile = block.get("profiles") or {}
        if known_profiles is not None:
            bad_profiles = sorted(set(by_profile) - set(known_profiles))
            if bad_profiles:
                raise ValueError(
                    f"{path}: {name}.profiles: unknown tuning profiles {bad_profiles}; "
                    f"train.profiles has {sorted(known_profiles)}"
                )
        # Layers of per-task-kind entries: the task kind's overrides, then each profile's.
        layers = {"overrides": block.get("overrides")} | {
            f"profiles.{profile_name}": by_kind for profile_name, by_kind in by_profile.items()
        }
        # Every section is validated, not only the requested task's, so a typo fails whatever the task.
        sections = {"space": block.get("space") or {}}
        for layer, by_kind in layers.items():
            by_kind = by_kind or {}
            if not isinstance(by_kind, Mapping):
                raise ValueError(f"{path}: {name}.{layer}: expected task kind -> parameters, got {by_kind!r}")
            bad_tasks = sorted(set(by_kind) - set(TASK_KINDS))
            if bad_tasks:
                raise ValueError(
                    f"{path}: {name}.{layer}: unknown task kinds {bad_tasks}; known {TASK_KINDS}"
                )
            sections |= {f"{layer}.{kind}": entries or {} for kind, entries in by_kind.items()}
        parsed: dict[str, SearchSpace] = {}
        for section, entries in sections.items():
            unknown = sorted(set(entries) - family.param_names)
            if unknown:
                raise ValueError(
                    f"{path}: {name}.{section}: unknown parameters {unknown}; "
                    f"{name} accepts {sorted(family.param_names)}"
                )
            parsed[section] = {
                param: _parse_spec(f"{path}: {name}.{section}.{param}", spec)
                for param, spec in entries.items()
            }
        space = dict(parsed["space"])
        if task is not None:
            space.update(parsed.get(f"overrides.{task}", {}))
            if profile is not None:
                space.update(parsed.get(f"profiles.{profile}.{task}", {}))
        spaces[name] = space
    return spaces


def suggest_params(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Draw one value per parameter, in the space's order (a stable order keeps seeded runs reproducible)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "int":
            step = int(spec.step) if spec.step is not None else 1
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        elif spec.type == "float":
            params[name] = trial.suggest_float(
                name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
            )
        else:
            params[name] = trial.suggest_categorical(name, list(spec.choices or ()))
    return params
