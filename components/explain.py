"""Why a model answers as it does: SHAP values of its features, grouped back to the raw input columns.

Native SHAP values where the library has them (LightGBM `pred_contrib`, XGBoost `pred_contribs`, CatBoost
`ShapValues`); elsewhere (the random forest, the MLP) a sampled permutation estimate: per row, how much the
output moves when one raw column's features take another row's values. Popularity's are on its prediction
and hit's on its log-odds, for both estimates; the genre's on the predicted class's raw score (native) or
log-probability (permutation), which differ by a per-row term. A blend's values are the mean of its members'
estimates: an estimate of what moved the blend, not an exact decomposition of its averaged probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import catboost as cb
import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from components.features import TrackFeaturizer
from components.inference import model_output
from components.names import NAME_COLUMNS, NAME_OUTPUT, SCRIPT_COLUMNS
from components.schema import AUDIO_FEATURES, GENRE, InputArrays

NATIVE, PERMUTATION = "shap", "permutation"
# Features built from more than the raw column of the same name.
_SOURCES: dict[str, tuple[str, ...]] = {
    "log_duration": ("duration_ms",),
    "energy_dance_ratio": ("energy", "danceability"),
    "acoustic_electronic_spectrum": ("acousticness", "energy"),
    "loudness_z": ("loudness",),
    "tempo_z": ("tempo",),
    "genre_index": (GENRE,),
    "artist_bucket": ("artists",),
    "artist_frequency": ("artists",),
    "artist_target": ("artists",),
    "album_target": ("album_name",),
    "credited_artists": ("artists",),
    "album_catalog_tracks": ("album_name",),
    NAME_OUTPUT: NAME_COLUMNS,
    **{column: NAME_COLUMNS for column in SCRIPT_COLUMNS},
}
# Rows of one pass of the background estimate (rows x background rows): bounds its memory.
_MIXED_ROWS = 100_000
# The names' three columns feed one model output: their share of it cannot be told apart.
NAMES_GROUP = "names (track, album, artists)"


def raw_sources(feature: str) -> tuple[str, ...]:
    """The raw input columns a feature is computed from."""
    if feature.startswith("genre__"):
        return (GENRE,)
    if feature in _SOURCES:
        return _SOURCES[feature]
    if feature in (*AUDIO_FEATURES, "explicit"):
        return (feature,)
    raise KeyError(f"no raw input column is known for feature {feature!r}")


def raw_group(feature: str) -> str:
    sources = raw_sources(feature)
    return NAMES_GROUP if sources == NAME_COLUMNS else "+".join(sources)


@dataclass(frozen=True)
class Explanation:
    """Per row and raw input group, the contribution to the model's margin, and how it was estimated."""

    values: pd.DataFrame  # rows x raw groups
    methods: tuple[str, ...]  # per member of a blend: NATIVE or PERMUTATION

    @property
    def estimate(self) -> str:
        """Which estimate the values are: shap, permutation, or both (a blend's mean of its members')."""
        return "+".join(dict.fromkeys(self.methods))

    def reasons(self, k: int) -> list[list[dict[str, object]]]:
        """Per row, the k raw groups of largest absolute contribution, largest first."""
        values = self.values.to_numpy()
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        columns = list(self.values.columns)
        return [
            [
                {"column": columns[j], "contribution": round(float(row[j]), 6), "estimate": self.estimate}
                for j in picks
            ]
            for row, picks in zip(values, order, strict=True)
        ]

    def importance(self) -> pd.Series:
        """Global importance: the mean absolute contribution per raw group, largest first."""
        return self.values.abs().mean().sort_values(ascending=False)


def _margin(
    model: object, matrix: np.ndarray, names: list[str], kind: str, classes: np.ndarray | None
) -> np.ndarray:
    """The model's margin per row: the prediction, the hit log-odds, or the log-probability of `classes`."""
    if kind == "regression":
        return np.asarray(model_output(model, matrix, names, proba=False), dtype="float64")
    proba = np.clip(np.asarray(model_output(model, matrix, names, proba=True), dtype="float64"), 1e-9, 1.0)
    if kind == "binary":
        return np.log(proba[:, 1]) - np.log1p(-np.minimum(proba[:, 1], 1 - 1e-9))
    return np.log(proba[np.arange(len(proba)), classes])


def _native(model: object, matrix: np.ndarray, kind: str, classes: np.ndarray | None) -> np.ndarray | None:
    """Per row and feature, the library's SHAP values (on the predicted class for a multiclass model); None
    where the library has none."""
    n, features = matrix.shape
    if isinstance(model, lgb.LGBMModel):
        values = np.asarray(model.booster_.predict(matrix, pred_contrib=True))
    elif isinstance(model, xgb.XGBModel):
        try:
            iterations = (0, int(model.best_iteration) + 1)
        except AttributeError:
            iterations = (0, 0)
        booster = model.get_booster()
        data = xgb.DMatrix(matrix, missing=model.missing, feature_names=booster.feature_names)
        values = np.asarray(booster.predict(data, pred_contribs=True, iteration_range=iterations))
    elif isinstance(model, cb.CatBoost):
        values = np.asarray(model.get_feature_importance(cb.Pool(matrix), type="ShapValues"))
    else:
        return None
    if kind == "multiclass":
        per_class = values.reshape(n, -1, features + 1) if values.ndim == 2 else values
        values = per_class[np.arange(n), classes]
    return values.reshape(n, features + 1)[:, :features]  # the last column is the expected value


def _grouped(values: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Feature contributions summed into raw groups (a feature of several raw columns counts for their
    combination, e.g. energy+danceability)."""
    groups = [raw_group(name) for name in names]
    frame = pd.DataFrame(values, columns=names)
    return frame.T.groupby(groups, sort=False).sum().T


def _permutation(
    model: object, matrix: np.ndarray, names: list[str], kind: str, classes: np.ndarray | None, seed: int
) -> pd.DataFrame:
    """Per row and raw group: the margin minus the margin with that group's features taken from another
    row (one seeded permutation per group)."""
    base = _margin(model, matrix, names, kind, classes)
    groups = pd.Series([raw_group(name) for name in names])
    rng = np.random.default_rng(seed)
    out = {}
    for group, positions in groups.groupby(groups, sort=False).groups.items():
        shuffled = matrix.copy()
        order = rng.permutation(len(matrix))
        columns = np.asarray(positions)
        shuffled[:, columns] = matrix[order][:, columns]
        out[group] = base - _margin(model, shuffled, names, kind, classes)
    return pd.DataFrame(out)


def _background_shift(
    model: object,
    matrix: np.ndarray,
    background: np.ndarray,
    names: list[str],
    kind: str,
    classes: np.ndarray | None,
) -> pd.DataFrame:
    """Per row and raw group: the margin minus its mean over the background rows' values of the group's
    features (a sampled estimate that holds for a single row, where a permutation within it cannot)."""
    base = _margin(model, matrix, names, kind, classes)
    groups = pd.Series([raw_group(name) for name in names])
    b = len(background)
    step = max(1, _MIXED_ROWS // b)  # rows per pass: bounds the n x b matrix of a large batch
    out = {}
    for group, positions in groups.groupby(groups, sort=False).groups.items():
        columns = np.asarray(positions)
        shifted = np.empty(len(matrix))
        for start in range(0, len(matrix), step):
            part = matrix[start : start + step]
            mixed = np.repeat(part, b, axis=0)
            mixed[:, columns] = np.tile(background[:, columns], (len(part), 1))
            part_classes = None if classes is None else np.repeat(classes[start : start + step], b)
            margins = _margin(model, mixed, names, kind, part_classes)
            shifted[start : start + step] = margins.reshape(len(part), b).mean(axis=1)
        out[group] = base - shifted
    return pd.DataFrame(out, index=pd.RangeIndex(len(matrix)))


def _members(estimator: object) -> list[Pipeline]:
    members = getattr(estimator, "members", None)
    return list(members) if members is not None else [estimator]  # a BlendModel, or one pipeline


def explain(
    estimator: object, inputs: pd.DataFrame, kind: str, seed: int, background: pd.DataFrame | None = None
) -> Explanation:
    """SHAP values of a fitted featurizer pipeline (or a blend of them) on `inputs`, per raw input group.
    For a multiclass model, on the margin of the class the model predicts for the row. A member without
    native values is estimated by permuting each group within `inputs` (for many rows: global importance)
    or, given `background` rows (training rows kept in the model), against them (any number of rows)."""
    if len(inputs) == 0:
        raise ValueError("no rows to explain")
    arrays = InputArrays.view(inputs.reset_index(drop=True))
    classes = None
    if kind == "multiclass":
        from components.inference import FeatureCache, answer

        classes = np.argmax(answer(estimator, arrays, FeatureCache(), proba=True), axis=1)
    parts, methods = [], []
    for member in _members(estimator):
        featurizer, model = member.steps[0][1], member.steps[-1][1]
        if not isinstance(featurizer, TrackFeaturizer):
            raise TypeError(f"cannot explain a {type(member).__name__}: no TrackFeaturizer step")
        matrix = featurizer.transform_matrix(arrays)
        names = list(featurizer.feature_names_out_)
        native = _native(model, matrix, kind, classes)
        if native is not None:
            parts.append(_grouped(native, names))
            methods.append(NATIVE)
        elif background is not None:
            reference = featurizer.transform_matrix(InputArrays.view(background.reset_index(drop=True)))
            parts.append(_background_shift(model, matrix, reference, names, kind, classes))
            methods.append(PERMUTATION)
        else:
            parts.append(_permutation(model, matrix, names, kind, classes, seed))
            methods.append(PERMUTATION)
    columns = list(dict.fromkeys(c for part in parts for c in part.columns))
    values = sum(part.reindex(columns=columns, fill_value=0.0) for part in parts) / len(parts)
    return Explanation(values, tuple(methods))
