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
    artist_mask_share: float = 0.0,
    hit_threshold: float | None = None,
) -> Pipeline:
    """Featurizer (these feature groups) and the fixed-parameter LightGBM regressor of popularity on the
    training rows, or with `hit_threshold` its classifier of popularity >= threshold; `names`: the names
    group's settings, when `groups` hold it; `artist_mask_share` as in TrackFeaturizer."""

    def featurizer(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(
            groups=tuple(groups),
            seed=seed,
            scale=needs_scaling,
            names=names,
            artist_mask_share=artist_mask_share,
        )

    y = train[TARGET].astype("float64").to_numpy()
    if hit_threshold is not None:
        y = (y >= hit_threshold).astype("int64")
    return fit_final(
        FAMILIES["lightgbm"],
        "regression" if hit_threshold is None else "binary",
        params.model_dump(),
        model_inputs(train),
        y,
        featurizer,
        seed,
        "cpu",
    )


def predict_baseline(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Popularity, clipped to the label's range; a hit classifier's probability of a hit."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(model_inputs(frame))[:, 1]
    return np.clip(model.predict(model_inputs(frame)), 0.0, 100.0)
