"""Where every stage reads and writes, relative to one project root. Names that become part of a path (a
batch, a task, a discovery part) are checked here, before any file is touched: they may come from anyone
with the Prefect UI, and `../../x` must not reach outside the project."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class InvalidNameError(ValueError):
    """A batch, model or task name that cannot be a file name inside the project."""


class NotAProjectError(FileNotFoundError):
    """A root that is not a trackflow project (no params.yaml and dvc.yaml in it)."""


def checked_name(kind: str, value: str) -> str:
    """`value` when it is a plain name: letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise InvalidNameError(
            f"{kind} name {value!r} is not allowed: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit"
        )
    return value


# The configuration files a stage may read, by the ProjectPaths property that gives each: stages read them
# through these properties only, which is how trackflow/pipeline.py knows a stage's config dependencies.
CONFIG_FILES: dict[str, str] = {
    "expectation_suite": "configs/expectations/tracks.yaml",
    "families_config": "configs/families.yaml",
    "schedules_config": "configs/schedules.yaml",
}


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @classmethod
    def at(cls, root: Path | str = ".") -> ProjectPaths:
        return cls(Path(root).resolve())

    @classmethod
    def project(cls, root: Path | str = ".") -> ProjectPaths:
        """The paths of a trackflow project: `root` must hold params.yaml and dvc.yaml (a flow's `root`
        parameter may come from the Prefect UI, and a run must not write its outputs just anywhere)."""
        paths = cls.at(root)
        missing = [p.name for p in (paths.params, paths.dvc_yaml) if not p.is_file()]
        if missing:
            raise NotAProjectError(f"{paths.root} is not a trackflow project: no {' and no '.join(missing)}")
        return paths

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_yaml(self) -> Path:
        return self.root / "dvc.yaml"

    @property
    def expectation_suite(self) -> Path:
        """The Great Expectations suite of the training gate and of scoring (it names configs/genres.txt)."""
        return self.root / CONFIG_FILES["expectation_suite"]

    @property
    def families_config(self) -> Path:
        """Search spaces of the model families, per task kind and tuning profile."""
        return self.root / CONFIG_FILES["families_config"]

    @property
    def schedules_config(self) -> Path:
        """Cron schedules of the served deployments."""
        return self.root / CONFIG_FILES["schedules_config"]

    @property
    def optuna(self) -> Path:
        """One sqlite database per (task, family) study: a rerun resumes its studies."""
        return self.root / "optuna"

    @property
    def raw_csv(self) -> Path:
        return self.root / "data" / "raw" / "dataset.csv"

    @property
    def raw_meta(self) -> Path:
        return self.root / "data" / "raw" / "source.json"

    @property
    def interim_tracks(self) -> Path:
        return self.root / "data" / "interim" / "tracks.parquet"

    @property
    def ingest_meta(self) -> Path:
        return self.root / "data" / "interim" / "ingest.json"

    @property
    def validated_tracks(self) -> Path:
        return self.root / "data" / "validated" / "tracks.parquet"

    @property
    def validation_summary(self) -> Path:
        return self.root / "data" / "validated" / "validation.json"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "data" / "quarantine"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features" / "tracks.parquet"

    @property
    def featurize_meta(self) -> Path:
        return self.root / "data" / "features" / "featurize.json"

    @property
    def splits(self) -> Path:
        return self.root / "data" / "splits" / "splits.parquet"

    # Per task (popularity, genre, hit).
    def tuning(self, task: str) -> Path:
        task = checked_name("task", task)
        return self.root / "data" / "tuning" / task

    def task_models(self, task: str) -> Path:
        task = checked_name("task", task)
        return self.root / "data" / "models" / task

    def task_metrics(self, task: str) -> Path:
        task = checked_name("task", task)
        return self.root / "metrics" / f"{task}.json"

    def task_registration(self, task: str) -> Path:
        task = checked_name("task", task)
        return self.root / "data" / "registry" / f"{task}.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    # Discovery (clusters, outliers, similar, playlists, map): one folder per part under data/discovery/.
    @property
    def discovery(self) -> Path:
        return self.root / "data" / "discovery"

    def discovery_part(self, part: str) -> Path:
        part = checked_name("discovery part", part)
        return self.discovery / part

    def discovery_model(self, part: str) -> Path:
        """The fitted model of a part (clusters, outliers, similar), pickled for fast local loading."""
        return self.discovery_part(part) / "model.pkl"

    @property
    def discovery_reports(self) -> Path:
        return self.reports / "discovery"

    @property
    def discovery_metrics(self) -> Path:
        return self.root / "metrics" / "discovery.json"

    @property
    def discovery_registration(self) -> Path:
        return self.root / "data" / "registry" / "discovery.json"

    @property
    def labels_dir(self) -> Path:
        """Labelled rows (`trackflow label`, or dropped by hand): immutable files featurize merges."""
        return self.root / "data" / "labels"

    # Batch scoring and drift monitoring.
    def predictions(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "data" / "predictions" / f"{batch}.parquet"

    def predictions_summary(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "data" / "predictions" / f"{batch}.json"

    @property
    def rejected_dir(self) -> Path:
        return self.root / "data" / "rejected"

    def rejected(self, batch: str) -> Path:
        """Where a batch that failed validation is kept for inspection, with the reasons."""
        batch = checked_name("batch", batch)
        return self.rejected_dir / batch

    def scoring_quarantine(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "data" / "quarantine" / "scoring" / f"{batch}.parquet"

    @property
    def drift_reference_dir(self) -> Path:
        return self.root / "data" / "drift"

    def drift_report(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "reports" / "drift" / f"{batch}.html"

    def drift_summary(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "reports" / "drift" / f"{batch}.json"

    # Features extracted from audio files (trackflow score-audio): one folder per batch.
    def audio_batch(self, batch: str) -> Path:
        batch = checked_name("batch", batch)
        return self.root / "data" / "audio" / batch
