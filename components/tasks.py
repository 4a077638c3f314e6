"""The predictive tasks, one spec per task kind. A spec owns what a row is, the label, the inputs a model may
see, what a model answers, the holdout metrics, the gate metric and its direction, the report's columns and
figures, and the prediction column of scoring. Every task-dependent step of the pipeline asks the spec; a new
task is one entry in TASK_SPECS plus its params.yaml entries (train.tasks, register.promotion_margin).

- popularity (regression): popularity 0-100, one row per track.
- hit (binary): popularity >= train.hit_threshold, one row per track.
- genre (genre set): 114-class classification. A track carries a SET of genres: training sees one row per
  (track, genre) pair, so every listed genre is a right answer; evaluation is per track, right when the
  prediction is in the set. The genre is the label here, so `track_genre` is never an input of its model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from components import task_report
from components.evaluation import binary_metrics, genre_metrics, regression_metrics
from components.features import popularity_balanced_weights
from components.schema import GENRE_SEPARATOR, MODEL_INPUT_COLUMNS, TARGET, model_inputs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from components.params import EvaluateParams

# A task's name is a key of TASK_SPECS; params.yaml is checked against them when it is loaded.
TaskName = str
TaskKind = Literal["regression", "binary", "multiclass"]
TASK_KINDS: tuple[TaskKind, ...] = ("regression", "binary", "multiclass")


@dataclass(frozen=True)
class TaskData:
    """Rows of one task: raw model inputs, labels, CV groups and (genre) each row's set of genres."""

    inputs: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    track_ids: np.ndarray
    label_sets: list[set[str]] | None = None

    def sample(self, limit: int | None, seed: int, always: np.ndarray | None = None) -> TaskData:
        """A seeded sample of whole rows (keeps groups consistent with their rows): at most `limit` of the
        rows not flagged in `always`, and every flagged one (labelled rows, which the run must learn)."""
        positions = self.sample_positions(limit, seed, always)
        return self if positions is None else self.take(positions)

    def sample_positions(
        self, limit: int | None, seed: int, always: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The sorted row positions `sample` takes; None when it takes every row."""
        always = np.zeros(len(self.y), dtype=bool) if always is None else np.asarray(always, dtype=bool)
        rest = np.flatnonzero(~always)
        if limit is None or len(rest) <= limit:
            return None
        picked = np.random.default_rng(seed).choice(rest, size=limit, replace=False)
        return np.sort(np.concatenate([picked, np.flatnonzero(always)]))

    def take(self, rows: np.ndarray) -> TaskData:
        """The rows at these positions (or where a boolean mask holds), in that order."""
        keep = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        return TaskData(
            self.inputs.iloc[keep].reset_index(drop=True),
            self.y[keep],
            self.groups[keep],
            self.track_ids[keep],
            None if self.label_sets is None else [self.label_sets[i] for i in keep],
        )


@dataclass(frozen=True)
class TaskSpec(ABC):
    name: str
    description: str  # of the registered model, in the MLflow UI
    prediction_column: str  # of batch scoring's output
    input_columns: tuple[str, ...] = MODEL_INPUT_COLUMNS
    kind: ClassVar[TaskKind]
    # The input column this task's answer predicts for rows that lack it (genre: track_genre), which scoring
    # reports beside the other answers without feeding it to them (their genre-free fallback answers such
    # rows, components/task_model.py), and the answer's dtype.
    answers_input: ClassVar[str | None] = None
    answer_dtype: ClassVar[str] = "float64"
    # The holdout metric that decides promotion, and whether lower is better.
    gate_metric: ClassVar[str]
    lower_is_better: ClassVar[bool]
    # Feature groups that would read this task's label, or that this kind of task cannot use.
    label_groups: ClassVar[tuple[str, ...]] = ()

    # --- rows ---
    def classes(self, tracks: pd.DataFrame) -> list[str] | None:
        """The class names of a classifier, in column order; None for a regression or a 0/1 label."""
        return None

    def n_classes(self, classes: Sequence[str] | None) -> int | None:
        return None

    @abstractmethod
    def rows(
        self, tracks: pd.DataFrame, classes: Sequence[str] | None, for_training: bool, threshold: float
    ) -> TaskData:
        """The task's rows from the per-track table; `threshold` is train.hit_threshold (binary tasks)."""

    def feature_groups(self, groups: Sequence[str]) -> tuple[str, ...]:
        """The configured feature groups less any that would read this task's label."""
        return tuple(g for g in groups if g not in self.label_groups)

    def sample_weights(self, y: np.ndarray, balanced: bool) -> np.ndarray | None:
        return None

    def _one_row_per_track(self, tracks: pd.DataFrame, y: np.ndarray) -> TaskData:
        return TaskData(
            model_inputs(tracks, self.input_columns),
            y,
            tracks["primary_artist"].astype(str).to_numpy(),
            tracks["track_id"].to_numpy(),
        )

    # --- what a model says ---
    def output(self, estimator: Any, inputs: pd.DataFrame) -> np.ndarray:
        """What the holdout metrics score: class probabilities of a classifier, predictions otherwise."""
        return np.asarray(estimator.predict_proba(inputs))

    @abstractmethod
    def answer(self, output: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
        """The registered model's answer (what scoring writes) from the estimator's output."""

    # --- how it is judged ---
    @abstractmethod
    def metrics(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None, evaluate: EvaluateParams
    ) -> dict[str, float]:
        """Holdout metrics of an estimator's output."""

    @abstractmethod
    def gate_score(self, holdout: TaskData, answers: np.ndarray) -> float:
        """The promotion metric from a registered model's answers (through the pyfunc, as scoring calls)."""

    @abstractmethod
    def report_metrics(self, metrics: dict[str, float]) -> list[str]:
        """The columns of the comparison table, given one family's metrics."""

    def figures(
        self,
        data: TaskData,
        output: np.ndarray,
        classes: Sequence[str] | None,
        uncalibrated: np.ndarray | None = None,
    ) -> list[tuple[str, Figure]]:
        """Holdout figures of the selected model (file name, figure); `uncalibrated`: its outputs before
        calibration, where it has a calibrator."""
        return []

    def table(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None
    ) -> tuple[str, pd.DataFrame] | None:
        """A holdout table of the selected model (file name, table), when the task has one."""
        return None


@dataclass(frozen=True)
class RegressionTask(TaskSpec):
    """A bounded number per track, judged by RMSE."""

    target: str = TARGET
    bounds: tuple[float, float] = (0.0, 100.0)
    kind: ClassVar[TaskKind] = "regression"
    gate_metric: ClassVar[str] = "rmse"
    lower_is_better: ClassVar[bool] = True

    def rows(
        self, tracks: pd.DataFrame, classes: Sequence[str] | None, for_training: bool, threshold: float
    ) -> TaskData:
        return self._one_row_per_track(tracks, tracks[self.target].to_numpy("float64"))

    def sample_weights(self, y: np.ndarray, balanced: bool) -> np.ndarray | None:
        # Rows weighted inversely to the frequency of their band, when params.yaml asks for it.
        return popularity_balanced_weights(y) if balanced else None

    def output(self, estimator: Any, inputs: pd.DataFrame) -> np.ndarray:
        return self.answer(np.asarray(estimator.predict(inputs), dtype="float64"), None)

    def answer(self, output: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
        return np.clip(np.asarray(output, dtype="float64"), *self.bounds)

    def metrics(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None, evaluate: EvaluateParams
    ) -> dict[str, float]:
        return regression_metrics(data.y, output)

    def gate_score(self, holdout: TaskData, answers: np.ndarray) -> float:
        return regression_metrics(holdout.y, self.answer(answers, None))["rmse"]

    def report_metrics(self, metrics: dict[str, float]) -> list[str]:
        return ["rmse", "mae", "r2", "top_decile_recall"]

    def figures(
        self,
        data: TaskData,
        output: np.ndarray,
        classes: Sequence[str] | None,
        uncalibrated: np.ndarray | None = None,
    ) -> list[tuple[str, Figure]]:
        return [("predicted_vs_actual.png", task_report.predicted_vs_actual(data.y, output, self.target))]

    def table(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None
    ) -> tuple[str, pd.DataFrame] | None:
        return "per_genre_error.md", task_report.error_by_first_genre(data.y, output, data.inputs)


@dataclass(frozen=True)
class BinaryTask(TaskSpec):
    """Whether a number reaches the threshold the stage passes (params.yaml `train.hit_threshold`), judged by
    ROC-AUC."""

    target: str = TARGET
    kind: ClassVar[TaskKind] = "binary"
    gate_metric: ClassVar[str] = "roc_auc"
    lower_is_better: ClassVar[bool] = False

    def n_classes(self, classes: Sequence[str] | None) -> int | None:
        return 2

    def rows(
        self, tracks: pd.DataFrame, classes: Sequence[str] | None, for_training: bool, threshold: float
    ) -> TaskData:
        return self._one_row_per_track(
            tracks, (tracks[self.target].to_numpy("float64") >= threshold).astype("int64")
        )

    def answer(self, output: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
        return np.asarray(output)[:, 1]

    def metrics(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None, evaluate: EvaluateParams
    ) -> dict[str, float]:
        return binary_metrics(data.y, output[:, 1], evaluate.hit_min_precision)

    def gate_score(self, holdout: TaskData, answers: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(holdout.y, np.asarray(answers, dtype="float64")))

    def report_metrics(self, metrics: dict[str, float]) -> list[str]:
        operating_point = next((k for k in metrics if k.startswith("recall_at")), "roc_auc")
        return ["roc_auc", "pr_auc", "log_loss", "calibration_error", operating_point]

    def figures(
        self,
        data: TaskData,
        output: np.ndarray,
        classes: Sequence[str] | None,
        uncalibrated: np.ndarray | None = None,
    ) -> list[tuple[str, Figure]]:
        return [
            ("roc_pr.png", task_report.roc_and_precision_recall(data.y, output[:, 1])),
            (
                "reliability.png",
                task_report.reliability_figure(
                    data.y, output[:, 1], None if uncalibrated is None else uncalibrated[:, 1]
                ),
            ),
        ]


@dataclass(frozen=True)
class GenreSetTask(TaskSpec):
    """One of the dataset's genres, right when it is in the track's set, judged by top-1 set accuracy."""

    input_columns: tuple[str, ...] = tuple(c for c in MODEL_INPUT_COLUMNS if c != "track_genre")
    kind: ClassVar[TaskKind] = "multiclass"
    gate_metric: ClassVar[str] = "top1_set_accuracy"
    lower_is_better: ClassVar[bool] = False
    # The names group's linear model has one output: a 114-class one would add 114 columns to each model.
    label_groups: ClassVar[tuple[str, ...]] = ("genre", "names")
    answers_input: ClassVar[str | None] = "track_genre"
    answer_dtype: ClassVar[str] = "object"

    def classes(self, tracks: pd.DataFrame) -> list[str] | None:
        return genre_classes(tracks)

    def n_classes(self, classes: Sequence[str] | None) -> int | None:
        if not classes:
            raise ValueError(f"the {self.name} task needs the class list")
        return len(classes)

    def rows(
        self, tracks: pd.DataFrame, classes: Sequence[str] | None, for_training: bool, threshold: float
    ) -> TaskData:
        if classes is None:
            raise ValueError(f"the {self.name} task needs the class list")
        index = {g: k for k, g in enumerate(classes)}
        groups = tracks["primary_artist"].astype(str).to_numpy()
        label_sets = [set(s.split(GENRE_SEPARATOR)) for s in tracks["track_genre"].astype(str)]
        if not for_training:
            # Evaluation: one row per track; y is the first genre (for log-loss), label_sets decide.
            first = np.array([index.get(sorted(s)[0], -1) for s in label_sets], dtype="int64")
            inputs = model_inputs(tracks, self.input_columns)
            return TaskData(inputs, first, groups, tracks["track_id"].to_numpy(), label_sets)
        pairs = tracks.assign(_genre=tracks["track_genre"].astype(str).str.split(GENRE_SEPARATOR)).explode(
            "_genre"
        )
        pairs = pairs[pairs["_genre"].isin(index)].reset_index(drop=True)
        return TaskData(
            model_inputs(pairs, self.input_columns),
            pairs["_genre"].map(index).to_numpy("int64"),
            pairs["primary_artist"].astype(str).to_numpy(),
            pairs["track_id"].to_numpy(),
            [set(s.split(GENRE_SEPARATOR)) for s in pairs["track_genre"].astype(str)],
        )

    def answer(self, output: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
        return np.asarray(classes, dtype=object)[np.argmax(output, axis=1)]

    def metrics(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None, evaluate: EvaluateParams
    ) -> dict[str, float]:
        return genre_metrics(data.label_sets or [], output, list(classes or []))

    def gate_score(self, holdout: TaskData, answers: np.ndarray) -> float:
        sets = holdout.label_sets or []
        return float(np.mean([name in labels for name, labels in zip(answers, sets, strict=True)]))

    def report_metrics(self, metrics: dict[str, float]) -> list[str]:
        return ["top1_set_accuracy", "top3_set_accuracy", "macro_f1"]

    def figures(
        self,
        data: TaskData,
        output: np.ndarray,
        classes: Sequence[str] | None,
        uncalibrated: np.ndarray | None = None,
    ) -> list[tuple[str, Figure]]:
        confused = task_report.confused_pairs(data.label_sets or [], list(self.answer(output, classes)))
        return [("confused_genres.png", task_report.confusion_figure(confused))] if len(confused) else []

    def table(
        self, data: TaskData, output: np.ndarray, classes: Sequence[str] | None
    ) -> tuple[str, pd.DataFrame] | None:
        confused = task_report.confused_pairs(data.label_sets or [], list(self.answer(output, classes)))
        return "most_confused.md", confused


TASK_SPECS: dict[TaskName, TaskSpec] = {
    spec.name: spec
    for spec in (
        RegressionTask("popularity", "Track popularity (0-100) from raw track rows", "predicted_popularity"),
        GenreSetTask(
            "genre",
            "The track's most likely genre (114 classes) from raw track rows, without their genre",
            "predicted_genre",
        ),
        BinaryTask(
            "hit",
            "Probability that a track is a hit (popularity at or above train.hit_threshold) from raw rows",
            "hit_probability",
        ),
    )
}
TASKS: tuple[TaskName, ...] = tuple(TASK_SPECS)


def genre_classes(tracks: pd.DataFrame) -> list[str]:
    """The sorted genre vocabulary; class k of the genre model is genre_classes[k]."""
    return sorted({g for s in tracks["track_genre"].astype(str) for g in s.split(GENRE_SEPARATOR) if g})


# The task that predicts the genre, and the metrics key of the holdout scores without the genre (what a
# scoring batch without one gets: the genre-free fallback of popularity and hit).
GENRE_TASK: TaskName = "genre"
GENRE_PREDICTED = "genre_predicted"
