"""Batch scoring: every pending batch in data/incoming/ (parquet, csv, csv.gz) read in chunks, validated with
the scoring variant of the suite, scored by the champions, written whole; a bad batch is kept aside."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from components.genres import GenreVocabulary
from components.ingest import IngestError, type_columns
from components.io import atomic_path, read_json, write_json, write_parquet, write_text
from components.params import Params
from components.schema import INDEX_COLUMN, RAW_SCHEMA, ROW_NUMBER
from components.scoring import (
    GENRE,
    OUTLIERS,
    PREDICTION_COLUMNS,
    Champion,
    colliding_columns,
    score_rows,
    with_known_genres,
)
from components.tasks import TASKS
from components.validation import DataValidationError, SuiteConfig, validate_tracks
from trackflow.config import load_suite
from trackflow.paths import InvalidNameError, ProjectPaths
from trackflow.tracking import Tracker

log = logging.getLogger("trackflow.scoring")


BATCH_SUFFIXES = (".parquet", ".csv.gz", ".csv")


class ScoringError(RuntimeError):
    """Nothing to score, or no champion to score with."""


class BatchRejected(DataValidationError):
    """A bad batch, caught and kept aside: an outcome of the data, not a failure of the system."""

    def __init__(self, batch: str, reason: str, kept_in: Path, cause: Exception) -> None:
        super().__init__(
            f"batch {batch} rejected, nothing written; the batch is kept in {kept_in}: {reason}",
            getattr(cause, "failures", []),
            summary=getattr(cause, "summary", None),
            report_html=getattr(cause, "report_html", None),
        )
        self.batch, self.reason, self.kept_in = batch, reason, kept_in

    def outcome(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "status": "rejected",
            "reason": self.reason,
            "kept_in": str(self.kept_in),
        }


def batch_name(path: Path) -> str:
    name = path.name
    for suffix in BATCH_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ScoringError(f"{path}: not a batch file (expected one of {', '.join(BATCH_SUFFIXES)})")


def incoming_dir(paths: ProjectPaths, params: Params) -> Path:
    return paths.root / params.score.incoming_dir


def pending_batches(paths: ProjectPaths, params: Params) -> list[Path]:
    """Batch files in the incoming folder without predictions, or changed since they were scored."""
    folder = incoming_dir(paths, params)
    if not folder.is_dir():
        return []
    pending = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.endswith(BATCH_SUFFIXES) or path.name.startswith("."):
            continue
        try:
            output = paths.predictions(batch_name(path))
        except InvalidNameError as exc:  # its outputs could not be named: left where it is, and said why
            log.warning("%s is not scored: %s", path, exc)
            continue
        if not output.exists() or output.stat().st_mtime < path.stat().st_mtime:
            pending.append(path)
    return pending


def _text_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The batch as text frames of at most `chunk_rows` rows, read without holding the file in memory. A
    file that cannot be read to its end (truncated or corrupt compression, not UTF-8, not a table) raises
    IngestError naming it, like any other bad batch, wherever in the file the damage is."""
    try:
        if path.name.endswith(".parquet"):
            source = pq.ParquetFile(path)
            for record_batch in source.iter_batches(batch_size=chunk_rows):
                yield record_batch.to_pandas().astype("string")
            return
        yield from _csv_chunks(path, chunk_rows)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        kind = "parquet file" if path.name.endswith(".parquet") else "CSV table"
        detail = str(exc)
        if "compressed" in detail or "inflate" in detail or isinstance(exc, EOFError):
            detail = f"the compressed file is truncated or corrupt: {detail}"
        raise IngestError(f"{path.name}: not a readable {kind} ({detail})") from exc


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    # Every column as text, the batch's own extra ones too: a type inferred from the first block would
    # break on a later block that holds other values. The names come from a small first read.
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    expected = {name: pa.string() for name in [INDEX_COLUMN, *RAW_SCHEMA.names, *header]}
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=expected, strings_can_be_null=True, null_values=[""]
        ),
    )
    pending: list[pd.DataFrame] = []
    held = 0
    for record_batch in reader:
        pending.append(record_batch.to_pandas().astype("string"))
        held += len(pending[-1])
        while held >= chunk_rows:
            joined = pd.concat(pending, ignore_index=True)
            yield joined.iloc[:chunk_rows]
            rest = joined.iloc[chunk_rows:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(pending, ignore_index=True)


def _typed(text: pd.DataFrame, first_row: int) -> pd.DataFrame:
    # The upstream index column leaks the genre: dropped here as at ingest.
    text = text.drop(columns=[c for c in (INDEX_COLUMN, "Unnamed: 0") if c in text.columns])
    typed, _ = type_columns(text.reset_index(drop=True))
    typed.insert(0, ROW_NUMBER, np.arange(first_row, first_row + len(typed), dtype=np.int64))
    return typed


def source_rows(
    paths: ProjectPaths,
    params: Params,
    name: str,
    purpose: str,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A scored batch's rows read back from its source file, typed as when it was scored (each with its file
    line). Beyond `max_rows` a seeded share of each chunk is kept, so a batch larger than memory never sits
    whole in it. `purpose` names who needs the rows, for the error."""
    summary_path = paths.predictions_summary(name)
    if not summary_path.exists():
        raise ScoringError(f"batch {name!r} has not been scored (no {summary_path})")
    summary = read_json(summary_path)
    source = summary.get("source")
    if not source or not Path(source).exists():
        raise ScoringError(
            f"batch {name!r}: its source file {source} is gone; {purpose} needs the batch rows"
        )
    keep_share = 1.0 if max_rows is None else min(1.0, max_rows / max(int(summary["rows_in"]), 1))
    rng = np.random.default_rng(seed)
    kept, first_row = [], 2  # file lines, as when the batch was scored
    for text in _text_chunks(Path(source), params.score.chunk_rows):
        typed = _typed(text, first_row)
        first_row += len(typed)
        kept.append(typed if keep_share >= 1 else typed[rng.random(len(typed)) < keep_share])
    return pd.concat(kept, ignore_index=True)


def scoring_suite(paths: ProjectPaths, nullable_columns: Sequence[str] = ()) -> SuiteConfig:
    """The scoring variant of the expectation suite; `nullable_columns` may be missing (values a source
    could not measure, such as audio features without an estimator: the models impute them)."""
    suite = load_suite(paths.expectation_suite, for_scoring=True)
    unknown = sorted(set(nullable_columns) - set(suite.required_columns))
    if unknown:
        raise ValueError(f"nullable_columns {unknown} are not columns of the scoring suite")
    columns = tuple(
        dataclasses.replace(rule, nullable=True) if rule.name in nullable_columns else rule
        for rule in suite.columns
    )
    return dataclasses.replace(suite, columns=columns)


def load_champions(
    paths: ProjectPaths, params: Params, tasks: Sequence[str] = (*TASKS, OUTLIERS)
) -> dict[str, Champion]:
    """`models:/<name>@champion` for each of `tasks` that has one (the outlier model included)."""
    tracker = Tracker.for_project(paths, params)
    champions = {}
    for task in tasks:
        version = tracker.champion(task)
        if version is None:
            continue
        model = mlflow.pyfunc.load_model(f"models:/{task}/{version.version}")
        champions[task] = Champion(task, str(version.version), str(version.run_id), model)
    return champions


def _reject(paths: ProjectPaths, name: str, source: Path | None, error: Exception) -> Path:
    """Keep a bad batch aside for inspection (moved out of the incoming folder, never deleted)."""
    folder = paths.rejected(name)
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None and source.exists():
        shutil.move(str(source), folder / source.name)
    details: dict[str, Any] = {"batch": name, "error": str(error), "rejected_at": pd.Timestamp.now("UTC")}
    if isinstance(error, DataValidationError):
        details["summary"] = error.summary
        if error.report_html:
            write_text(error.report_html, folder / "validation_report.html")
    write_json(details, folder / "rejection.json")
    return folder


def _score_chunks(
    paths: ProjectPaths,
    params: Params,
    chunks: Iterator[pd.DataFrame],
    name: str,
    source: Path | None,
    nullable_columns: Sequence[str] = (),
    champions: dict[str, Champion] | None = None,
    move_rejected: bool = True,
) -> dict[str, Any]:
    champions = champions if champions is not None else load_champions(paths, params)
    if not set(champions) & set(TASKS):
        raise ScoringError("no champion is registered: run training (`make run`) or promote a model first")
    suite = scoring_suite(paths, nullable_columns)
    genres = GenreVocabulary.of(suite.input_value_sets[GENRE])
    gate = params.validation.model_copy(update={"min_rows": params.score.min_rows})
    scored_at = pd.Timestamp.now("UTC")
    started = time.perf_counter()
    rows_in = rows_scored = 0
    outlier_count: int | None = None
    genre_inputs: dict[str, int] = {}
    passthrough: list[str] = []
    quarantined: list[pd.DataFrame] = []
    writer: pq.ParquetWriter | None = None
    destination = paths.predictions(name)
    try:
        with atomic_path(destination, ".parquet") as tmp:
            for text in chunks:
                if collisions := colliding_columns([c for c in text.columns if c not in RAW_SCHEMA.names]):
                    raise DataValidationError(
                        f"batch {name}: column(s) {', '.join(collisions)} have the name of an output column "
                        "of the predictions file: rename them (a batch's own columns are carried through)",
                        [],
                        summary={"colliding_columns": collisions},
                    )
                typed = with_known_genres(_typed(text, first_row=rows_in + 2), genres)
                rows_in += len(typed)
                outcome = validate_tracks(typed, suite, gate, columns_in_file=list(text.columns))
                if len(outcome.quarantined):
                    quarantined.append(outcome.quarantined)
                passthrough = list(outcome.summary["columns_passed_through"])
                predictions = score_rows(
                    outcome.valid, champions, scored_at, passthrough, params.score.reasons
                )
                for source_kind, count in predictions["genre_input"].value_counts().items():
                    genre_inputs[str(source_kind)] = genre_inputs.get(str(source_kind), 0) + int(count)
                # The gate keeps valid rows in file order: their line numbers are the ones not quarantined.
                lines = typed[ROW_NUMBER]
                valid_lines = lines[~lines.isin(outcome.quarantined[ROW_NUMBER])].to_numpy()
                predictions.insert(0, ROW_NUMBER, valid_lines)
                table = pa.Table.from_pandas(predictions, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
                rows_scored += len(predictions)
                if "is_outlier" in predictions:
                    outlier_count = (outlier_count or 0) + int(predictions["is_outlier"].sum())
                elapsed = time.perf_counter() - started
                log.info("%s: %s rows scored (%.0f rows/s)", name, f"{rows_scored:,}", rows_scored / elapsed)
            if writer is None:
                raise DataValidationError(f"batch {name} has no rows", [], summary={"rows_in": 0})
            writer.close()
            writer = None
    except (DataValidationError, IngestError) as exc:
        if writer is not None:
            writer.close()
        kept = _reject(paths, name, source if move_rejected else None, exc)
        raise BatchRejected(name, str(exc), kept, exc) from exc
    if quarantined:
        write_parquet(pd.concat(quarantined, ignore_index=True), paths.scoring_quarantine(name))
    seconds = time.perf_counter() - started
    summary = {
        "batch": name,
        "status": "scored",
        "source": str(source) if source is not None else None,
        "predictions_path": str(destination),
        "rows_in": rows_in,
        "rows_scored": rows_scored,
        "rows_quarantined": rows_in - rows_scored,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows_scored / seconds, 1) if seconds > 0 else None,
        "models": {
            task: {"name": c.task, "version": c.version, "run_id": c.run_id, "uri": c.uri}
            for task, c in champions.items()
        },
        "prediction_columns": [PREDICTION_COLUMNS[t] for t in champions if t in PREDICTION_COLUMNS],
        # Per row, where the popularity and hit models' genre came from: given, predicted or unknown.
        "genre_input": genre_inputs,
        "columns_passed_through": passthrough,
        "outliers": outlier_count,
        "outlier_share": round(outlier_count / rows_scored, 6)
        if outlier_count is not None and rows_scored
        else None,
        "scored_at": scored_at.isoformat(),
    }
    write_json(summary, paths.predictions_summary(name))
    log.info(
        "%s: %s of %s rows scored in %.1f s (%.0f rows/s) with %s",
        name,
        f"{rows_scored:,}",
        f"{rows_in:,}",
        seconds,
        summary["rows_per_s"] or 0,
        ", ".join(f"{t} v{c.version}" for t, c in champions.items()),
    )
    return summary


def score_file(
    paths: ProjectPaths, params: Params, path: Path, champions: dict[str, Champion] | None = None
) -> dict[str, Any]:
    """Validate and score one batch file in chunks; its predictions replace any earlier ones whole."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"batch file {path} does not exist")
    name = batch_name(path)
    return _score_chunks(
        paths, params, _text_chunks(path, params.score.chunk_rows), name, path, (), champions
    )


def score_frame(
    paths: ProjectPaths,
    params: Params,
    frame: pd.DataFrame,
    batch_name: str,
    *,
    nullable_columns: Sequence[str] = (),
    source: Path | None = None,
) -> dict[str, Any]:
    """Validate and score rows already in memory (for example features computed from audio files).
    `source`, a file holding the same rows, is recorded so that drift monitoring can read them back."""
    text = frame.astype("string")
    return _score_chunks(
        paths, params, iter([text]), batch_name, source, nullable_columns, move_rejected=False
    )
