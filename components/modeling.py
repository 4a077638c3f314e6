"""Building and fitting the popularity model: the fitted preprocessing and the regressor in one Pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from components.features import DEFAULT_GROUPS, TrackFeaturizer, popularity_balanced_weights
from components.params import LightGBMParams
from components.schema import COLUMNS, TARGET

# The raw columns a model takes: the dataset's schema less the popularity label. Genre is an input of the
# popularity and hit models (one genre, or the set joined by '|'); the genre task drops it (components/tasks).
MODEL_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != TARGET)


def model_inputs(frame: pd.DataFrame, columns: Sequence[str] = MODEL_INPUT_COLUMNS) -> pd.DataFrame:
    """The raw input columns in their canonical order (a copy: callers' frames are never mutated)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"model input is missing columns {missing}")
    inputs = frame[list(columns)].copy()
    # Plain numpy dtypes give a simple, stable signature that matches the dataset's raw columns (integers stay
    # int64, so rows read straight from the CSV or parquet pass MLflow's schema check).
    for column in inputs.columns:
        dtype = inputs[column].dtype
        if isinstance(dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(dtype):
            inputs[column] = inputs[column].astype("float64").fillna(0.0).astype(bool)
        elif pd.api.types.is_integer_dtype(dtype):
            has_gaps = bool(inputs[column].isna().any())
            inputs[column] = inputs[column].astype("float64" if has_gaps else "int64")
        elif pd.api.types.is_numeric_dtype(dtype):
            inputs[column] = inputs[column].astype("float64")
        else:
            inputs[column] = inputs[column].astype(object).where(inputs[column].notna(), None)
    return inputs


def build_popularity_pipeline(
    params: LightGBMParams, seed: int, groups: Sequence[str] = DEFAULT_GROUPS
) -> Pipeline:
    regressor = lgb.LGBMRegressor(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_child_samples,
        subsample=params.subsample,
        subsample_freq=params.subsample_freq,
        colsample_bytree=params.colsample_bytree,
        reg_lambda=params.reg_lambda,
        n_jobs=params.n_jobs,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    return Pipeline([("features", TrackFeaturizer(groups=tuple(groups), seed=seed)), ("model", regressor)])


def fit_popularity_model(
    train: pd.DataFrame,
    params: LightGBMParams,
    seed: int,
    groups: Sequence[str] = DEFAULT_GROUPS,
    balanced_weights: bool = False,
) -> Pipeline:
    """Fit preprocessing and regressor on the training rows only."""
    pipeline = build_popularity_pipeline(params, seed, groups)
    y = train[TARGET].astype("float64").to_numpy()
    fit_kwargs = {"model__sample_weight": popularity_balanced_weights(y)} if balanced_weights else {}
    pipeline.fit(model_inputs(train), y, **fit_kwargs)
    return pipeline


def predict_popularity(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    # Popularity is bounded: clip so that no prediction leaves the label's range.
    return np.clip(model.predict(model_inputs(frame)), 0.0, 100.0)
