"""The registry of model families that tuning can search over, and their search spaces.

A family knows how to build a scikit-learn compatible estimator for a task kind from a flat parameter dict,
and how to fit it with early stopping on an eval set and Optuna pruning wired to the library's own
per-iteration hook. Adding a family is one `Family` subclass (a module of this package) in `FAMILIES` plus one
block in configs/families.yaml (its search space); `parse_search_spaces` checks that the two agree, and
params.yaml's train.families is checked against FAMILIES when it is loaded.

Classification labels are integer-encoded 0..K-1 by the caller. Every classifier here is built for all K
classes up front, so a label missing from a training fold still gets its (near-zero) column and
`predict_proba` always returns K columns in class order.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from typing import Any

from components.families import estimators
from components.families.base import MAX_THREADS, Family, resolve_device
from components.families.catboost_family import CatBoostFamily
from components.families.forest_family import RandomForestFamily
from components.families.lightgbm_family import LightGBMFamily
from components.families.mlp_family import MLPFamily
from components.families.spaces import ParamSpec, SearchSpace, parse_families, suggest_params
from components.families.xgboost_family import XGBoostFamily
from components.tasks import TaskKind

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (LightGBMFamily(), XGBoostFamily(), CatBoostFamily(), RandomForestFamily(), MLPFamily())
}

__all__ = [
    "FAMILIES",
    "MAX_THREADS",
    "CatBoostFamily",
    "Family",
    "LightGBMFamily",
    "MLPFamily",
    "ParamSpec",
    "RandomForestFamily",
    "SearchSpace",
    "XGBoostFamily",
    "parse_search_spaces",
    "resolve_device",
    "suggest_params",
]


def parse_search_spaces(
    raw: Mapping[str, Any],
    source: str,
    task: TaskKind | None = None,
    profile: str | None = None,
    known_profiles: Collection[str] | None = None,
) -> dict[str, SearchSpace]:
    """configs/families.yaml's content (`source` names it in errors) -> family -> {param: ParamSpec}."""
    return parse_families(raw, source, FAMILIES, task, profile, known_profiles)


# Saved models pickled these classes as components.families.<name>, before they moved to
# components.families.estimators: those paths still resolve, with a warning.
_MOVED_CLASSES = (
    "LGBMFixedClassifier",
    "XGBFixedClassifier",
    "CatBoostFixedClassifier",
    "FixedClassesClassifier",
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_CLASSES:
        warnings.warn(
            f"components.families.{name} moved to components.families.estimators.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(estimators, name)
    raise AttributeError(f"module 'components.families' has no attribute {name!r}")
