"""Estimators over a fixed class set 0..K-1, whatever labels a training fold holds. They are pickled inside
every saved and registered classifier, so their module path is part of the model files: keep it (or keep a
re-export at the old path, as components/families/__init__.py does for the path before this module)."""

from __future__ import annotations

from typing import Any

import catboost as cb
import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


def as_proba(raw: np.ndarray) -> np.ndarray:
    """Binary objectives return P(class 1) only: widen to the two columns predict_proba promises."""
    raw = np.asarray(raw, dtype="float64")
    return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw


class LGBMFixedClassifier(ClassifierMixin, lgb.LGBMModel):
    """LightGBM over the classes 0..K-1 (objective binary or multiclass with num_class=K).
    LGBMClassifier infers its classes from y, so a label missing from a training fold would drop a column
    and an eval row of that label could not even be encoded."""

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return as_proba(lgb.LGBMModel.predict(self, X, **kwargs))

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X, **kwargs), axis=1)

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(int(self.get_params().get("num_class", 2)))


class XGBFixedClassifier(ClassifierMixin, xgb.XGBModel):
    """XGBoost over the classes 0..K-1 (XGBClassifier rejects a y that does not hold every class)."""

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return as_proba(xgb.XGBModel.predict(self, X, **kwargs))

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X, **kwargs), axis=1)

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(int(self.get_params().get("num_class") or 2))


class CatBoostFixedClassifier(cb.CatBoostClassifier):
    """CatBoostClassifier with class_names=0..K-1 whose predict returns a flat label vector (CatBoost's
    multiclass predict returns an (n, 1) column)."""

    def predict(self, data: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(data), axis=1)


class FixedClassesClassifier(ClassifierMixin, BaseEstimator):
    """Wraps a scikit-learn classifier so that predict_proba has n_classes columns in class order, those
    of classes absent from the training rows being 0 (for estimators, like forests, that cannot be told
    the class set)."""

    def __init__(self, estimator: Any, n_classes: int) -> None:
        self.estimator = estimator
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> FixedClassesClassifier:
        self.estimator_ = clone(self.estimator).fit(X, y, sample_weight=sample_weight)
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        present = self.estimator_.predict_proba(X)
        proba = np.zeros((present.shape[0], self.n_classes), dtype="float64")
        proba[:, np.asarray(self.estimator_.classes_, dtype="int64")] = present
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_
