"""The inference path that the registered models, batch scoring and the model server share.

A registered model is a `TaskModel` (components/task_model.py): raw rows -> a fitted `TrackFeaturizer` ->
one estimator, or a blend of several, each with a genre-free fallback. Answered naively, one row costs about
30 ms per model, almost none of it in the models: the featurizer builds its frame column by column for every
blend member, and every library call spins up its thread pool and re-validates its input. This path:

- featurizes once per distinct fitted featurizer (`FeatureCache`): the tree families of a blend, and the
  popularity and hit models, were fitted on the same rows with the same groups, so they share one
  featurization per batch; the features come from `TrackFeaturizer.transform_matrix` (numpy);
- calls each library's own predict on that matrix without re-validating it, one thread per call for a
  small batch (`SMALL_BATCH_ROWS`), where waking a pool costs more than the work; large batches keep each
  model's own thread count;
- answers a random forest tree by tree on the compiled trees (sklearn's own `tree_.predict`), summed in
  order as sklearn's forest does.

The answers are those of each library's public `predict` (tests compare them on every family).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import catboost as cb
import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline

from components.families.estimators import FixedClassesClassifier, as_proba
from components.features import TrackFeaturizer
from components.schema import GENRE, InputArrays, model_inputs, plain_column

# Up to this many rows, each library call runs on one thread.
SMALL_BATCH_ROWS = 256


def state_key(featurizer: TrackFeaturizer) -> str:
    """A digest of a fitted featurizer's state: featurizers with equal keys give every row equal features."""
    cached = featurizer.__dict__.get("_state_key_")
    if cached is None:
        state = {k: v for k, v in featurizer.__getstate__().items() if not k.startswith("_")}
        cached = hashlib.sha256(pickle.dumps(sorted(state.items()), protocol=5)).hexdigest()
        featurizer.__dict__["_state_key_"] = cached  # dropped when pickled (TrackFeaturizer.__getstate__)
    return cached


class FeatureCache:
    """What one batch's answering computes once and shares between models: the input columns (each
    converted once, components/schema.py `InputArrays`), row subsets (rows with and without a genre), and
    the features per distinct featurizer state.

    It holds what it was given, so that ids stay unique while it lives; use one per batch."""

    def __init__(self) -> None:
        self._held: list[Any] = []
        self._columns: dict[tuple[int, str], np.ndarray] = {}
        self._inputs: dict[tuple[int, tuple[str, ...]], InputArrays] = {}
        self._subsets: dict[tuple[int, bytes], InputArrays] = {}
        self._features: dict[tuple[str, int], np.ndarray] = {}
        self._shared: dict[tuple[int, ...], dict[tuple[object, ...], object]] = {}

    def inputs(self, rows: pd.DataFrame | InputArrays, columns: tuple[str, ...]) -> InputArrays:
        """`rows`' model inputs `columns` (InputArrays.of), each column converted once per rows."""
        key = (id(rows), columns)
        if key not in self._inputs:
            self._held.append(rows)
            if isinstance(rows, InputArrays):
                missing = [c for c in columns if c not in rows]
                if missing:
                    raise KeyError(f"model input is missing columns {missing}")
                self._inputs[key] = InputArrays({c: rows[c] for c in columns}, len(rows))
            else:
                missing = [c for c in columns if c not in rows.columns]
                if missing:
                    raise KeyError(f"model input is missing columns {missing}")
                arrays = {}
                for column in columns:
                    if (id(rows), column) not in self._columns:
                        self._columns[(id(rows), column)] = plain_column(rows[column])
                    arrays[column] = self._columns[(id(rows), column)]
                self._inputs[key] = InputArrays(arrays, len(rows))
        return self._inputs[key]

    def subset(self, inputs: InputArrays, mask: np.ndarray) -> InputArrays:
        """The rows of `inputs` where `mask` holds, once per inputs and mask."""
        key = (id(inputs), np.packbits(mask).tobytes() + len(mask).to_bytes(8, "little"))
        if key not in self._subsets:
            self._held.append(inputs)
            self._subsets[key] = inputs.take(mask)
        return self._subsets[key]

    def features(self, featurizer: TrackFeaturizer, inputs: InputArrays) -> np.ndarray:
        key = (state_key(featurizer), id(inputs))
        if key not in self._features:
            self._held.append(inputs)
            self._features[key] = featurizer.transform_matrix(inputs, self.shared(inputs))
        return self._features[key]

    def shared(self, inputs: InputArrays) -> dict[tuple[object, ...], object]:
        """The store of what the models answering these rows share (the names' characters and n-grams),
        one per set of name columns: the genre task's inputs and popularity's hold the same arrays."""
        from components.names import NAME_COLUMNS

        self._held.append(inputs)
        key = tuple(id(inputs[c]) if c in inputs else id(inputs) for c in NAME_COLUMNS)
        return self._shared.setdefault(key, {})


def _threads(n_rows: int) -> int | None:
    return 1 if n_rows <= SMALL_BATCH_ROWS else None


class _OneTorchThread:
    """torch's thread count is process-wide: small calls run on one thread, and the count the process had
    comes back when the last overlapping small call ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = 1

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                import torch  # already loaded: only a torch model takes this path

                self._saved = torch.get_num_threads()
                torch.set_num_threads(1)
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    import torch

                    torch.set_num_threads(self._saved)


_one_torch_thread = _OneTorchThread()
# Single-threaded copies of XGBoost boosters (a booster's thread count is its own state, shared by every
# caller): made once per fitted model, never pickled with it.
_single_thread_boosters: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_boosters_lock = threading.Lock()


def _single_thread_booster(model: Any) -> Any:
    with _boosters_lock:
        booster = _single_thread_boosters.get(model)
        if booster is None:
            booster = model.get_booster().copy()
            booster.set_param({"nthread": 1})
            _single_thread_boosters[model] = booster
    return booster


def _forest_output(forest: Any, matrix: np.ndarray, proba: bool) -> np.ndarray:
    """A forest's mean over its trees, as sklearn's predict / predict_proba computes it with one job."""
    X = np.ascontiguousarray(matrix, dtype=np.float32)
    total = None
    for tree in forest.estimators_:
        values = tree.tree_.predict(X)
        values = values[:, 0] if not proba else values[:, : forest.n_classes_]
        total = values.copy() if total is None else total + values
    assert total is not None
    return total / len(forest.estimators_)


def _proba_columns(estimator: Any, proba: np.ndarray) -> np.ndarray:
    """FixedClassesClassifier's widening: the wrapped forest's columns placed among all n_classes."""
    out = np.zeros((proba.shape[0], estimator.n_classes), dtype="float64")
    out[:, np.asarray(estimator.estimator_.classes_, dtype="int64")] = proba
    return out


def model_output(model: Any, matrix: np.ndarray, names: list[str], proba: bool) -> np.ndarray:
    """`model.predict_proba(features)` (proba) or `model.predict(features)` on the featurizer's matrix."""
    threads = _threads(len(matrix))
    if isinstance(model, lgb.LGBMModel):
        # The booster itself: the scikit-learn wrapper re-validates the matrix and warns on its lack of
        # column names; its num_iteration (the best one, else all) is the booster's default.
        kwargs = {} if threads is None else {"num_threads": threads}
        raw = model.booster_.predict(matrix, **kwargs)
        return as_proba(raw) if proba else raw
    if isinstance(model, xgb.XGBModel):
        # The matrix's columns are the featurizer's names in order: nothing for xgboost to check. The
        # trees used are those XGBModel.predict uses: up to the best iteration of an early-stopped fit.
        try:
            iterations = (0, int(model.best_iteration) + 1)
        except AttributeError:
            iterations = (0, 0)
        booster = model.get_booster() if threads is None else _single_thread_booster(model)
        raw = booster.inplace_predict(
            matrix, iteration_range=iterations, missing=model.missing, validate_features=False
        )
        return as_proba(raw) if proba else raw
    if isinstance(model, cb.CatBoost):
        kwargs = {"thread_count": threads or -1}
        return model.predict_proba(matrix, **kwargs) if proba else model.predict(matrix, **kwargs)
    if isinstance(model, RandomForestRegressor) and not proba:
        return _forest_output(model, matrix, proba=False)
    if isinstance(model, FixedClassesClassifier) and isinstance(model.estimator_, RandomForestClassifier):
        return _proba_columns(model, _forest_output(model.estimator_, matrix, proba=True))
    if _is_torch_mlp(model) and list(model.feature_names_in_) == names:
        with _one_torch_thread() if threads == 1 else nullcontext():
            return model.predict_proba(matrix) if proba else model.predict(matrix)
    frame = pd.DataFrame(matrix, columns=names)
    return model.predict_proba(frame) if proba else model.predict(frame)


def _is_torch_mlp(model: Any) -> bool:
    # torch takes about 2 s to import: a process whose models hold no MLP (components/torch_mlp.py is then
    # never loaded, unpickling one loads it) does not pay for it.
    module = sys.modules.get("components.torch_mlp")
    return module is not None and isinstance(model, module.TorchMLPRegressor | module.TorchMLPClassifier)


class CachedAnswers:
    """An estimator as a TaskSpec's `output` sees it (predict / predict_proba on input rows), answered
    through a batch's `FeatureCache` where the estimator is a featurizer pipeline or a blend of them."""

    def __init__(self, estimator: Any, cache: FeatureCache):
        self.estimator = estimator
        self.cache = cache

    def predict(self, inputs: InputArrays | pd.DataFrame) -> np.ndarray:
        return answer(self.estimator, _arrays(inputs), self.cache, proba=False)

    def predict_proba(self, inputs: InputArrays | pd.DataFrame) -> np.ndarray:
        return answer(self.estimator, _arrays(inputs), self.cache, proba=True)


def _arrays(inputs: InputArrays | pd.DataFrame) -> InputArrays:
    return inputs if isinstance(inputs, InputArrays) else InputArrays.view(inputs)


def answer(estimator: Any, inputs: InputArrays, cache: FeatureCache, proba: bool) -> np.ndarray:
    """An estimator's predict (or predict_proba) on input rows, through the cache; an estimator that is
    not a featurizer pipeline (nor a blend of them) gets the rows as a frame."""
    members = getattr(estimator, "members", None)
    if members is not None and hasattr(estimator, "combine"):  # a task_model.BlendModel
        return estimator.combine([answer(m, inputs, cache, proba) for m in members])
    if isinstance(estimator, Pipeline) and len(estimator.steps) == 2:
        featurizer, model = estimator.steps[0][1], estimator.steps[1][1]
        if isinstance(featurizer, TrackFeaturizer):
            matrix = cache.features(featurizer, inputs)
            return np.asarray(model_output(model, matrix, featurizer.feature_names_out_, proba))
    frame = inputs.frame()
    return np.asarray(estimator.predict_proba(frame) if proba else estimator.predict(frame))


class _FramePath:
    """An estimator answered as before this module: each featurizer pipeline builds its own frame
    (`TrackFeaturizer.transform_frame`) and calls its library's public predict."""

    def __init__(self, estimator: Any):
        self.estimator = estimator

    def _answer(self, inputs: pd.DataFrame, proba: bool) -> np.ndarray:
        members = getattr(self.estimator, "members", None)
        if members is not None and hasattr(self.estimator, "combine"):
            return self.estimator.combine([_FramePath(m)._answer(inputs, proba) for m in members])
        estimator = self.estimator
        if isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], TrackFeaturizer):
            inputs, estimator = estimator.steps[0][1].transform_frame(inputs), estimator.steps[-1][1]
        return np.asarray(estimator.predict_proba(inputs) if proba else estimator.predict(inputs))

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        return self._answer(inputs, proba=False)

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        return self._answer(inputs, proba=True)


def reference_outputs(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """A TaskModel's `outputs` computed the way they were before this path existed (the model's input
    frame, a frame per blend member, each library's public predict with its own thread count): what the
    tests hold the fast path to, and the bench's "before"."""
    from components.tasks import TASK_SPECS

    spec = TASK_SPECS[model.task]
    inputs = model_inputs(rows, spec.input_columns)
    absent = (
        inputs[GENRE].isna().to_numpy()
        if model.fallback is not None and GENRE in inputs.columns
        else np.zeros(len(inputs), dtype=bool)
    )
    parts = {
        False: np.flatnonzero(~absent),
        True: np.flatnonzero(absent),
    }
    out: np.ndarray | None = None
    for is_absent, positions in parts.items():
        if not len(positions):
            continue
        estimator = model.fallback if is_absent else model.estimator
        answered = np.asarray(spec.output(_FramePath(estimator), inputs.iloc[positions]))
        if out is None:
            out = np.empty((len(inputs), *answered.shape[1:]), dtype=answered.dtype)
        out[positions] = answered
    assert out is not None, "no rows"
    return out
