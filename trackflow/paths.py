"""Where every stage reads and writes, relative to one project root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @classmethod
    def at(cls, root: Path | str = ".") -> ProjectPaths:
        return cls(Path(root).resolve())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

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

    @property
    def model_dir(self) -> Path:
        return self.root / "data" / "models" / "popularity"

    @property
    def predictions(self) -> Path:
        return self.root / "data" / "evaluation" / "holdout_predictions.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / "popularity.json"

    @property
    def registration(self) -> Path:
        return self.root / "data" / "registry" / "registration.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
