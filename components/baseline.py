"""The popularity baseline of the feature ablation: the LightGBM family with fixed parameters (params.yaml
`ablation.lightgbm`), fitted by the same code as every tuned model (components.tuning.fit_final). There is
no second model pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from components.families import FAMILIES
from components.features import TrackFeaturizer
from components.names import NameModelSettings
from components.params import LightGBMParams
from components.schema import TARGET, model_inputs
from components.tuning import fit_final


def fit_baseline(
    train: pd.DataFrame,
    params: LightGBMParams,
    seed: int,
    groups: Sequence[str],
    names: NameModelSettings | None = None,
) -> Pipeline:
    """Featurizer (these feature groups) and the fixed-parameter LightGBM regressor, on the training rows;
    `names`: the names group's settings, when `groups` hold it."""

    def featurizer(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(groups=tuple(groups), seed=seed, scale=needs_scaling, names=names)

    y = train[TARGET].astype("float64").to_numpy()
    return fit_final(
        FAMILIES["lightgbm"],
        "regression",
        params.model_dump(),
        model_inputs(train),
        y,
        featurizer,
        seed,
        "cpu",
    )


def predict_baseline(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    # Popularity is bounded: clip so that no prediction leaves the label's range.
    return np.clip(model.predict(model_inputs(frame)), 0.0, 100.0)
