"""Deprecated: the model inputs moved to components.schema, and the popularity baseline runs through the
LightGBM family (components.families) with params.yaml's `ablation.lightgbm`. Kept so that code and models
saved before the move still import `components.modeling.model_inputs`."""

from __future__ import annotations

import warnings
from typing import Any

from components import schema

_MOVED = {"model_inputs": schema, "MODEL_INPUT_COLUMNS": schema}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"components.modeling.{name} moved to components.schema.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(_MOVED[name], name)
    raise AttributeError(f"module 'components.modeling' has no attribute {name!r}")
