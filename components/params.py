"""Typed view of params.yaml: one pydantic model per stage section, unknown keys rejected.

No field has a default: params.yaml is the one source of every value, so the code cannot disagree with it.
Names (tasks, families, profiles, the models that promotion margins are for) are checked when it is loaded
(trackflow/config.py reads the file).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.names import NameModelSettings
from components.schema import SplitProtocol


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FetchParams(_Section):
    url: str
    expected_sha256: str | None
    timeout_s: float = Field(gt=0)


class ValidateParams(_Section):
    min_rows: int = Field(ge=1)
    max_rows: int = Field(ge=1)
    row_failure_tolerance: float = Field(ge=0, le=1)
    max_duplicate_row_share: float = Field(ge=0, le=1)
    max_repeated_track_id_share: float = Field(ge=0, le=1)


class FeaturizeParams(_Section):
    popularity_reconcile: Literal["median", "max", "mean"]


class SplitParams(_Section):
    seed: int
    test_size: float = Field(gt=0, lt=1)
    protocol: SplitProtocol


class LightGBMParams(_Section):
    n_estimators: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    num_leaves: int = Field(ge=2)
    min_child_samples: int = Field(ge=1)
    # The least hessian sum of a leaf; 114-class fits need more than LightGBM's 1e-3 (see params.yaml).
    min_child_weight: float = Field(ge=0)
    subsample: float = Field(gt=0, le=1)
    subsample_freq: int = Field(ge=0)
    colsample_bytree: float = Field(gt=0, le=1)
    reg_lambda: float = Field(ge=0)
    n_jobs: int


FeatureGroup = Literal[
    "audio",
    "engineered",
    "genre",
    "artist_frequency",
    "artist_target",
    "album_target",
    "ids",
    "names",
    "catalog",
]


class NamesParams(_Section):
    """The names feature group's linear model (components/names.py)."""

    hash_features: int = Field(ge=2**10, le=2**22)
    ngram_min: int = Field(ge=1)
    ngram_max: int = Field(ge=1)
    alpha: float = Field(gt=0)
    folds: int = Field(ge=2)
    # The genre task's naive Bayes on the names (components/name_genres.py): its hashed columns and smoothing.
    genre_hash_features: int = Field(ge=2**10, le=2**20)
    genre_alpha: float = Field(gt=0)

    @model_validator(mode="after")
    def _ngram_range(self) -> NamesParams:
        for key in ("hash_features", "genre_hash_features"):
            value = getattr(self, key)
            if value & (value - 1):
                raise ValueError(f"train.names: {key} {value} is not a power of two")
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"train.names: ngram_min {self.ngram_min} is above ngram_max {self.ngram_max}")
        return self

    def settings(self) -> NameModelSettings:
        return NameModelSettings(
            n_features=self.hash_features,
            ngram_min=self.ngram_min,
            ngram_max=self.ngram_max,
            alpha=self.alpha,
            folds=self.folds,
        )

    def genre_settings(self) -> NameModelSettings:
        """The genre classifier's: its own column count and smoothing, the same n-grams and folds."""
        own = {"n_features": self.genre_hash_features, "alpha": self.genre_alpha}
        return dataclasses.replace(self.settings(), **own)


TaskName = str  # a key of components.tasks.TASK_SPECS, checked on load
DiscoveryModelName = Literal["clusters", "outliers", "similar-tracks"]


class TuningProfile(_Section):
    n_trials: int = Field(ge=1)
    # Wall-clock budget of one (task, family) study; None: only n_trials bounds it.
    timeout_s: float | None = Field(gt=0)
    cv_folds: int = Field(ge=2)
    # Tuning CV runs on a seeded sample of at most this many training rows (None: all of them).
    max_tune_rows: int | None = Field(ge=100)
    # The final fit of each family uses at most this many training rows (None: all of them).
    max_train_rows: int | None = Field(ge=100)


class TrainParams(_Section):
    seed: int
    # auto: CUDA when present (PyTorch, XGBoost, CatBoost), else CPU. Nothing requires a GPU.
    device: Literal["auto", "cpu", "cuda"]
    tasks: tuple[TaskName, ...]
    families: tuple[str, ...]  # keys of components.families.FAMILIES, checked on load
    hit_threshold: float = Field(gt=0, le=100)
    feature_groups: tuple[FeatureGroup, ...]
    # Weight popularity training rows inversely to the frequency of their popularity band.
    balanced_weights: bool
    # Try the mean of the two best families; keep it only when it wins on cross-validation.
    blend: bool
    # The final fit of a boosting family or the MLP runs as many iterations as early stopping keeps on this
    # grouped share of its training rows (components.tuning.plan_refit); 0: the tuned count, unstopped.
    refit_validation_share: float = Field(ge=0, le=0.5)
    profile: str
    profiles: dict[str, TuningProfile]
    # The untuned LightGBM fitted beside the tuned families: a row of every comparison, never selected.
    baseline: LightGBMParams
    names: NamesParams
    # Seeded training rows kept in each model: per-prediction explanations of a member without native SHAP
    # values (the random forest, the MLP) compare a row against them.
    explain_background_rows: int = Field(ge=1)
    # The share of training artists encoded as unseen (artist groups, catalog counts): both regimes.
    artist_mask_share: float = Field(ge=0, lt=1)
    # Binary tasks' probabilities calibrated on the out-of-fold outputs of the tuning folds (none: raw).
    calibration: Literal["none", "sigmoid", "isotonic"]

    @model_validator(mode="after")
    def _known_names(self) -> TrainParams:
        # Checked when the file is loaded, not when tuning reaches the bad entry an hour into a run.
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of train.profiles {sorted(self.profiles)}")
        for field, names in (("tasks", self.tasks), ("families", self.families)):
            if not names:
                raise ValueError(f"train.{field} is empty")
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"train.{field} lists {repeated} more than once")
        return self

    @property
    def tuning(self) -> TuningProfile:
        """The active profile's budget (train.profiles[train.profile])."""
        return self.profiles[self.profile]


class AblationParams(_Section):
    lightgbm: LightGBMParams
    # Added one at a time, in this order (`trackflow ablation`).
    groups: tuple[FeatureGroup, ...] = Field(min_length=1)
    # Also the same order without the genre group: what a genre-free fallback reads.
    without_genre: bool


class EvaluateParams(_Section):
    # The hit model's operating point: the best recall at at least this precision.
    hit_min_precision: float = Field(gt=0, lt=1)
    # The selected model's SHAP importance (components/explain.py) is measured on a seeded sample this large.
    explain_rows: int = Field(ge=10)


class RegisterParams(_Section):
    # A challenger becomes champion only when it beats the champion's holdout score by more than this
    # (popularity: RMSE lower; genre: top-1 set accuracy higher; hit: ROC-AUC higher).
    promotion_margin: dict[TaskName, float]
    # The holdout condition the gate compares popularity and hit on: `predicted` (no genre, as a scoring batch
    # without one meets the models: their genre-free fallback answers) or `given` (the track's own genre).
    gate_condition: Literal["given", "predicted"]


class ScoreParams(_Section):
    # Batches land here (parquet, csv, csv.gz); `trackflow score` scores those without up-to-date predictions.
    incoming_dir: str
    # Rows read, validated and scored at a time: bounds memory for batches larger than memory.
    chunk_rows: int = Field(ge=1)
    # A scoring batch may be small (one album, a few audio files); the training gate's minimum does not apply.
    min_rows: int = Field(ge=1)
    # Opt-in per-prediction explanations: each task's top this-many reasons as a JSON column (0: off; it
    # costs more than the answer).
    reasons: int = Field(ge=0, le=20)


class DriftParams(_Section):
    # Evidently's dataset-level drift flag: this share of input columns drifted.
    drift_share: float = Field(gt=0, le=1)
    # Retraining is triggered when at least this share of input columns drifted.
    retrain_share: float = Field(gt=0, le=1)
    retrain: bool
    # Rows of a batch (and of the reference) compared, sampled with `seed` beyond this; bounds memory.
    max_rows: int = Field(ge=100)
    seed: int
    # Retrain when the champions' realised error on new labels is worse than their holdout error by more
    # than this: popularity RMSE higher by this share of it, hit ROC-AUC lower by this much.
    realised_error_margin: dict[Literal["popularity", "hit"], float]


class SimulateParams(_Section):
    seed: int
    rows: int = Field(ge=1)
    # genre_mix: this share of the batch comes from the genres with the most energetic tracks.
    genre_mix_genres: int = Field(ge=1)
    genre_mix_share: float = Field(gt=0, le=1)
    # louder: remastered louder by this many dB (energy measured higher with it).
    louder_db: float = Field(gt=0)
    louder_energy: float = Field(ge=0)
    # shorter: durations scaled by this factor (radio edits, short-form releases).
    shorter_factor: float = Field(gt=0, lt=1)


class AudioParams(_Section):
    """Feature extraction from audio files (components/audio, `trackflow score-audio`)."""

    # Files are decoded to mono and resampled to this rate before analysis.
    sample_rate: int = Field(ge=8000, le=96000)
    # Only the first max_seconds are analysed (None: all); duration_ms always covers the whole file.
    max_seconds: float | None = Field(gt=0)
    # Shorter files are reported as errors: tempo, key and loudness need a few seconds of signal.
    min_seconds: float = Field(ge=0)
    # Worker processes of a batch (each single-threaded in numeric libraries: n workers use n cores).
    workers: int = Field(ge=1)
    # File types picked up in a folder (lower case, no dot); other files are ignored, not errors.
    extensions: tuple[str, ...]
    recursive: bool
    hop_length: int = Field(ge=64)
    # Onset envelope and beats use a finer hop: at 512 one frame is about 3 BPM at 90 BPM.
    rhythm_hop_length: int = Field(ge=32)
    n_mfcc: int = Field(ge=1, le=128)
    # The time signature is estimated only over at least this many beats (6 bars of 4/4), and only when
    # triple or quadruple accent periodicity is positive and wins by meter_margin; otherwise
    # time_signature_fallback, flagged.
    min_beats_for_meter: int = Field(ge=16)
    meter_margin: float = Field(ge=0)
    time_signature_fallback: int | None = Field(ge=3, le=7)

    @model_validator(mode="after")
    def _extensions_plain(self) -> AudioParams:
        bad = [e for e in self.extensions if not e or e != e.lower() or e.startswith(".")]
        if bad:
            raise ValueError(f"extensions must be lower case without a dot, got {bad}")
        return self


class DiscoveryClusterParams(_Section):
    k: int = Field(ge=2)
    # KMeans is also fitted for each of these k; silhouette and Davies-Bouldin are logged to show the choice.
    k_range: tuple[int, ...]
    n_init: int = Field(ge=1)
    # Silhouette is O(n^2): scored on a seeded sample of this many training tracks.
    score_sample: int = Field(ge=100)
    top_genres: int = Field(ge=1)
    typical_tracks: int = Field(ge=1)


class DiscoveryDensityParams(_Section):
    """HDBSCAN for niche tracks (no dense region); fitted on a seeded sample, extended to every track."""

    min_cluster_size: int = Field(ge=2)
    min_samples: int = Field(ge=1)
    selection: Literal["eom", "leaf"]
    sample: int = Field(ge=100)


class DiscoveryOutlierParams(_Section):
    # Share of training tracks flagged is_outlier (the threshold is that quantile of the training scores).
    contamination: float = Field(gt=0, lt=0.5)
    n_estimators: int = Field(ge=10)
    ae_hidden: int = Field(ge=2)
    ae_bottleneck: int = Field(ge=1)
    ae_epochs: int = Field(ge=1)
    ae_batch_size: int = Field(ge=8)
    ae_learning_rate: float = Field(gt=0)
    top_n: int = Field(ge=1)
    # Held-out rows scored against broken copies of themselves (synthetic-anomaly ROC-AUC, the gate).
    eval_rows: int = Field(ge=50)


class DiscoverySimilarParams(_Section):
    k: int = Field(ge=1)
    # Default genre weight of the index (0: audio only); the evaluation also reports eval_genre_weight.
    genre_weight: float = Field(ge=0)
    eval_genre_weight: float = Field(ge=0)
    # Held-out (main protocol test) tracks used as queries, seeded sample.
    eval_queries: int = Field(ge=10)


class DiscoveryPlaylistParams(_Section):
    n: int = Field(ge=2)
    # A point target (energy=0.8) accepts tracks within this many standard deviations of the value.
    tolerance_sd: float = Field(gt=0)
    max_per_artist: int = Field(ge=1)
    # Transition cost: |tempo step| / tempo_step_bpm + key_weight x Camelot-wheel steps.
    tempo_step_bpm: float = Field(gt=0)
    key_weight: float = Field(ge=0)
    # Canned requests the evaluation runs (the same syntax as `trackflow playlist --target`).
    eval_targets: tuple[tuple[str, ...], ...]
    # Seed playlists evaluated: this many sets of eval_seeds held-out tracks, each set from one genre.
    eval_seed_sets: int = Field(ge=1)
    eval_seeds: int = Field(ge=1)


class DiscoveryMapParams(_Section):
    tsne_sample: int = Field(ge=50)
    perplexity: float = Field(gt=1)
    highlight_genres: int = Field(ge=1, le=10)


class DiscoveryParams(_Section):
    """Clusters, outliers, similar tracks, playlists and the map (trackflow/discovery_stages.py)."""

    seed: int
    # Standardised audio features of the discovery space (see components/discovery/space.py).
    features: tuple[str, ...]
    clusters: DiscoveryClusterParams
    density: DiscoveryDensityParams
    outliers: DiscoveryOutlierParams
    similar: DiscoverySimilarParams
    playlist: DiscoveryPlaylistParams
    map: DiscoveryMapParams
    # Champion gate per registered model: clusters by silhouette, outliers by synthetic-anomaly ROC-AUC,
    # similar-tracks by held-out neighbour genre agreement (all higher is better), by more than this.
    promotion_margin: dict[DiscoveryModelName, float]

    @model_validator(mode="after")
    def _known_features(self) -> DiscoveryParams:
        from components.schema import AUDIO_FEATURES

        known = (*AUDIO_FEATURES, "explicit", "log_duration")
        unknown = [f for f in self.features if f not in known]
        if unknown or not self.features:
            raise ValueError(f"discovery.features: unknown {unknown}; choose from {list(known)}")
        return self


class ServeParams(_Section):
    """The model server (`trackflow serve-models`)."""

    host: str
    port: int = Field(ge=1, le=65535)
    # How often the registry is asked which version each alias points at: a move shows up within this.
    poll_interval_s: float = Field(gt=0)
    max_body_bytes: int = Field(ge=1024)
    max_rows: int = Field(ge=1)
    top_k: int = Field(ge=1)
    # Every answer is appended to a JSON-lines file per day here.
    log_dir: str


class RunsParams(_Section):
    # A run that finds another holding the project lock waits this long for it, then stops naming the holder.
    lock_wait_s: float = Field(ge=0)


class MlflowParams(_Section):
    tracking_uri: str
    artifact_root: str
    experiment: str


class Params(_Section):
    fetch: FetchParams
    validate_: ValidateParams = Field(alias="validate")
    featurize: FeaturizeParams
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    ablation: AblationParams
    register_: RegisterParams = Field(alias="register")
    score: ScoreParams
    drift: DriftParams
    simulate: SimulateParams
    audio: AudioParams
    discovery: DiscoveryParams
    serve: ServeParams
    runs: RunsParams
    mlflow: MlflowParams

    @model_validator(mode="after")
    def _every_task_has_a_margin(self) -> Params:
        missing = [t for t in self.train.tasks if t not in self.register_.promotion_margin]
        if missing:
            raise ValueError(f"register.promotion_margin has no entry for task(s) {missing}")
        models = typing.get_args(DiscoveryModelName)
        missing = [m for m in models if m not in self.discovery.promotion_margin]
        if missing:
            raise ValueError(f"discovery.promotion_margin has no entry for {missing}")
        return self

    # `validate` and `register` would shadow pydantic's BaseModel attributes, hence the aliases.
    @property
    def validation(self) -> ValidateParams:
        return self.validate_

    @property
    def registry(self) -> RegisterParams:
        return self.register_
