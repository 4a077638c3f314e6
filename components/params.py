"""Typed view of params.yaml: one pydantic model per stage section, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FetchParams(_Section):
    url: str
    expected_sha256: str | None = None
    timeout_s: float = Field(default=120, gt=0)


class ValidateParams(_Section):
    min_rows: int = Field(default=1000, ge=1)
    max_rows: int = Field(default=5_000_000, ge=1)
    row_failure_tolerance: float = Field(default=0.01, ge=0, le=1)
    max_duplicate_row_share: float = Field(default=0.05, ge=0, le=1)
    max_repeated_track_id_share: float = Field(default=0.35, ge=0, le=1)


class FeaturizeParams(_Section):
    popularity_reconcile: Literal["median", "max", "mean"] = "median"


class SplitParams(_Section):
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)
    protocol: Literal["artist", "track"] = "artist"


class LightGBMParams(_Section):
    n_estimators: int = Field(default=600, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=63, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    subsample: float = Field(default=0.8, gt=0, le=1)
    subsample_freq: int = Field(default=1, ge=0)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0)
    n_jobs: int = 2


FeatureGroup = Literal[
    "audio", "engineered", "genre", "artist_frequency", "artist_target", "album_target", "ids"
]


TaskName = Literal["popularity", "genre", "hit"]


class TuningProfile(_Section):
    n_trials: int = Field(default=2, ge=1)
    # Wall-clock budget of one (task, family) study; None: only n_trials bounds it.
    timeout_s: float | None = Field(default=120, gt=0)
    cv_folds: int = Field(default=3, ge=2)
    # Tuning CV runs on a seeded sample of at most this many training rows (None: all of them).
    max_tune_rows: int | None = Field(default=10_000, ge=100)
    # The final fit of each family uses at most this many training rows (None: all of them).
    max_train_rows: int | None = Field(default=None, ge=100)


class TrainParams(_Section):
    seed: int = 42
    # auto: CUDA when present (PyTorch, XGBoost, CatBoost), else CPU. Nothing requires a GPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tasks: tuple[TaskName, ...] = ("popularity", "genre", "hit")
    families: tuple[str, ...] = ("lightgbm", "xgboost", "catboost", "random_forest", "mlp")
    hit_threshold: float = Field(default=60, gt=0, le=100)
    feature_groups: tuple[FeatureGroup, ...] = ("audio", "engineered", "genre")
    # Weight popularity training rows inversely to the frequency of their popularity band.
    balanced_weights: bool = False
    # Try the mean of the two best families; keep it only when it wins on cross-validation.
    blend: bool = True
    profile: str = "default"
    profiles: dict[str, TuningProfile] = Field(default_factory=lambda: {"default": TuningProfile()})

    @model_validator(mode="after")
    def _profile_exists(self) -> TrainParams:
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of train.profiles {sorted(self.profiles)}")
        return self

    @property
    def tuning(self) -> TuningProfile:
        if self.profile not in self.profiles:
            raise ValueError(
                f"train.profile={self.profile!r} is not one of train.profiles {sorted(self.profiles)}"
            )
        return self.profiles[self.profile]


class AblationParams(_Section):
    lightgbm: LightGBMParams = LightGBMParams()


class EvaluateParams(_Section):
    # The hit model's operating point: the best recall at at least this precision.
    hit_min_precision: float = Field(default=0.5, gt=0, lt=1)


class RegisterParams(_Section):
    # A challenger becomes champion only when it beats the champion's holdout score by more than this
    # (popularity: RMSE lower; genre: top-1 set accuracy higher; hit: ROC-AUC higher).
    promotion_margin: dict[TaskName, float] = Field(
        default_factory=lambda: {"popularity": 0.0, "genre": 0.0, "hit": 0.0}
    )


class MlflowParams(_Section):
    tracking_uri: str = "sqlite:///mlflow/mlflow.db"
    artifact_root: str = "mlflow/artifacts"
    experiment: str = "trackflow"


class Params(_Section):
    fetch: FetchParams
    validate_: ValidateParams = Field(default=ValidateParams(), alias="validate")
    featurize: FeaturizeParams = FeaturizeParams()
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    ablation: AblationParams = AblationParams()
    register_: RegisterParams = Field(default=RegisterParams(), alias="register")
    mlflow: MlflowParams = MlflowParams()

    # `validate` and `register` would shadow pydantic's BaseModel attributes, hence the aliases.
    @property
    def validation(self) -> ValidateParams:
        return self.validate_

    @property
    def registry(self) -> RegisterParams:
        return self.register_


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
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ParamsError(f"{path}: {problems}") from exc
