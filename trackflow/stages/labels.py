"""Labels flowing back: `trackflow label BATCH LABELS` attaches observed outcomes to a scored batch, through
the training data's validation gate, as an immutable file under data/labels/ (a dependency of featurize,
which merges them). Files of labelled rows in the dataset's columns may also be dropped there by hand: they
pass the same gate when featurize reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from components.genres import GenreVocabulary
from components.ingest import type_columns
from components.io import atomic_path, write_json
from components.labels import LABEL_BATCH, LABEL_VALUES, LABELLED_AT, LabelError, attach_labels
from components.params import Params
from components.schema import COLUMNS, GENRE, ROW_NUMBER
from components.scoring import with_known_genres
from components.validation import DataValidationError, validate_tracks
from trackflow.config import load_suite
from trackflow.paths import ProjectPaths, checked_name
from trackflow.stages.common import log
from trackflow.stages.scoring import source_rows

LABEL_SUFFIXES = (".parquet", ".csv")
# The oldest time: a hand-dropped file without `labelled_at` yields to every stamped label.
UNSTAMPED = pd.Timestamp("1970-01-01", tz="UTC")


def scored_rows(paths: ProjectPaths, params: Params, batch: str) -> pd.DataFrame:
    """Every row of a scored batch that was scored (its quarantined rows left out), typed, with its line."""
    rows = source_rows(paths, params, batch, "labelling")
    scored = pd.read_parquet(paths.predictions(batch), columns=[ROW_NUMBER])[ROW_NUMBER]
    return rows[rows[ROW_NUMBER].isin(scored)].reset_index(drop=True)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV as text (typed by the ingest rules) or a parquet file as it is."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    typed, _ = type_columns(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
    return typed


def _gated(rows: pd.DataFrame, paths: ProjectPaths, params: Params, what: str) -> pd.DataFrame:
    """The rows that pass the training data's gate, genre spellings normalised (an unknown genre fails its
    row, naming the value); DataValidationError naming `what` when the rows fail it as a whole."""
    suite = load_suite(paths.expectation_suite)
    scoring = load_suite(paths.expectation_suite, for_scoring=True)
    checked = with_known_genres(rows[list(COLUMNS)], GenreVocabulary.of(scoring.input_value_sets[GENRE]))
    gate = params.validation.model_copy(update={"min_rows": 1})
    try:
        outcome = validate_tracks(checked, suite, gate, columns_in_file=list(COLUMNS))
    except DataValidationError as exc:
        raise DataValidationError(f"{what}: {exc}", exc.failures, summary=exc.summary) from exc
    if len(outcome.quarantined):
        reasons = outcome.quarantined.get("quarantine_reason", pd.Series(dtype=str)).astype(str).unique()
        log.warning("%s: %d row(s) failed the gate: %s", what, len(outcome.quarantined), reasons[:3])
    stamps = rows[["track_id", LABELLED_AT, LABEL_BATCH]].drop_duplicates("track_id", keep="last")
    valid = outcome.valid[list(COLUMNS)].reset_index(drop=True)
    return valid.merge(stamps, on="track_id", how="left", validate="many_to_one")


def label_batch(paths: ProjectPaths, params: Params, batch: str, labels_path: Path) -> dict[str, Any]:
    """Attach the outcomes in `labels_path` to the scored `batch`: data/labels/<batch>.<time>.parquet, never
    overwritten. Nothing is written when the labels are bad."""
    batch = checked_name("batch", batch)
    labels_path = Path(labels_path)
    if not labels_path.is_file() or labels_path.suffix not in LABEL_SUFFIXES:
        raise LabelError(f"labels file {labels_path} does not exist or is not .csv or .parquet")
    labelled_at = pd.Timestamp.now("UTC")
    labels = read_table(labels_path)
    rows = attach_labels(scored_rows(paths, params, batch), labels, batch, labelled_at)
    kept = _gated(rows, paths, params, f"labels {labels_path.name} for batch {batch}")
    stamp = labelled_at.strftime("%Y%m%dT%H%M%S%fZ")
    target = paths.labels_dir / f"{batch}.{stamp}.parquet"
    if target.exists():
        raise FileExistsError(f"{target} exists: label files are never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, ".parquet") as tmp:
        kept.to_parquet(tmp, index=False)
    summary = {
        "batch": batch,
        "labels_file": str(labels_path),
        "labelled_file": str(target),
        "labelled_at": labelled_at.isoformat(),
        "rows_labelled": len(kept),
        "rows_failed_gate": len(rows) - len(kept),
        "labels": [c for c in LABEL_VALUES if c in labels.columns],
    }
    write_json(summary, paths.reports / "labels" / f"{target.stem}.json")
    log.info("%s: %d track(s) labelled -> %s", batch, len(kept), target)
    return summary


def label_files(paths: ProjectPaths) -> list[Path]:
    folder = paths.labels_dir
    return sorted(p for p in folder.iterdir() if p.suffix in LABEL_SUFFIXES) if folder.is_dir() else []


def _stamped(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`frame` of label file `path` with its batch and labelling time: a hand-dropped file without them is
    named after the file and counts as older than any stamped one."""
    return frame.assign(
        **{
            LABEL_BATCH: frame[LABEL_BATCH] if LABEL_BATCH in frame else path.name.split(".")[0],
            LABELLED_AT: pd.to_datetime(frame[LABELLED_AT], utc=True) if LABELLED_AT in frame else UNSTAMPED,
        }
    )


def label_stamps(path: Path) -> pd.DataFrame:
    """A label file's track_id, label_batch and labelled_at (of parquet, only those columns are read)."""
    wanted = ["track_id", LABEL_BATCH, LABELLED_AT]
    if path.suffix == ".parquet":
        present = set(pq.read_schema(path).names)
        frame = pd.read_parquet(path, columns=[c for c in wanted if c in present])
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return _stamped(frame, path)[wanted]


def newest_label_batch(paths: ProjectPaths) -> tuple[str, np.ndarray] | None:
    """The most recently labelled batch under data/labels/ and its track ids (None without labels)."""
    stamps = [label_stamps(path) for path in label_files(paths)]
    if not stamps:
        return None
    latest = max(stamps, key=lambda frame: frame[LABELLED_AT].max())
    return str(latest[LABEL_BATCH].iloc[0]), latest["track_id"].astype(str).to_numpy()


def read_labels(paths: ProjectPaths, params: Params) -> list[pd.DataFrame]:
    """Every label file under data/labels/, in name order, each stamped (`_stamped`) and through the gate."""
    frames = []
    for path in label_files(paths):
        frame = read_table(path)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise LabelError(f"label file {path} lacks the dataset column(s) {missing}")
        frames.append(_gated(_stamped(frame, path), paths, params, f"label file {path.name}"))
    return frames
