"""Audio files as a scoring batch: extract features (components/audio), check them with the scoring suite,
score them with the champions, and write a per-file summary.

Outputs of a batch NAME:
    data/audio/NAME/tracks.parquet       the dataset's columns (no labels), one row per scorable file
    data/audio/NAME/descriptors.parquet  file facts, flags and MFCC / chroma / contrast / onset summaries
    data/audio/NAME/columns.json         how each column was obtained: measured, estimated, proxy, missing
    data/audio/NAME/errors.json          every file that was skipped, with the reason
    data/audio/NAME/validation.html      the scoring suite's report on the extracted rows
    data/audio/NAME/extract.json         the extraction summary (speed included)
    data/audio/NAME/files.csv            per file: status, key, tempo, ... and the predictions
    data/predictions/NAME.parquet        the predictions (trackflow.stages.scoring.score_frame)
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.audio import (
    COLUMN_SOURCES,
    MISSING_COLUMNS,
    TRACK_COLUMNS,
    AudioBatch,
    FileError,
    extract_files,
    find_audio_files,
)
from components.io import atomic_dir, read_json, write_json, write_parquet, write_text
from components.params import Params
from components.scoring import PREDICTION_COLUMNS
from components.validation import QUARANTINE_REASON, validate_tracks
from trackflow.paths import ProjectPaths
from trackflow.stages.scoring import score_frame, scoring_suite

log = logging.getLogger("trackflow.audio")
# Shown per file in the summary, from the descriptors and the extracted columns.
_SUMMARY_COLUMNS = (
    "duration_s",
    "key_name",
    "tempo",
    "time_signature",
    "time_signature_estimated",
    "loudness",
    "energy",
    "danceability",
)


class AudioBatchError(ValueError):
    """No audio file to extract from, none readable, or a batch that was never extracted."""


def default_batch_name(source: Path) -> str:
    stem = Path(source).resolve().name or "root"
    return "audio-" + (re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-") or "files")


def _files(source: Path, params: Params) -> tuple[list[Path], list[Path]]:
    source = Path(source)
    if source.is_file():
        return [source], []
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    files, others = find_audio_files(source, params.audio.extensions, recursive=params.audio.recursive)
    if not files:
        kinds = ", ".join(params.audio.extensions)
        raise AudioBatchError(f"{source}: no audio files ({kinds}: audio.extensions in params.yaml)")
    return files, others


def _out_of_range(
    paths: ProjectPaths, params: Params, batch: AudioBatch, nullable: list[str]
) -> tuple[np.ndarray, list[FileError], str]:
    """Check the rows with the scoring suite one by one: a file whose features break a rule (e.g. a file
    longer than the suite's 3 hours) becomes a per-file error instead of sinking the whole batch at the
    scoring gate. A table-level failure (a column of the wrong type) is a bug here and raises."""
    suite = scoring_suite(paths, nullable)
    per_row = params.validation.model_copy(update={"min_rows": 1, "row_failure_tolerance": 1.0})
    outcome = validate_tracks(batch.tracks, suite, per_row)
    rejected = set(outcome.quarantined["track_id"].astype(str))
    paths_by_id = dict(zip(batch.descriptors["track_id"], batch.descriptors["path"], strict=True))
    errors = [
        FileError(
            paths_by_id[str(row.track_id)], f"features fail the scoring suite: {row[QUARANTINE_REASON]}"
        )
        for _, row in outcome.quarantined.iterrows()
    ]
    keep = ~batch.tracks["track_id"].astype(str).isin(rejected)
    return keep.to_numpy(), errors, outcome.report_html


def extract_audio(
    paths: ProjectPaths,
    params: Params,
    source: Path | str,
    batch: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Features of the audio files in `source` (a folder, searched per audio.recursive, or one file) into
    data/audio/<batch>/; unreadable files are listed with their reason, never fatal unless none is left."""
    source = Path(source)
    name = batch or default_batch_name(source)
    files, others = _files(source, params)
    n_workers = workers if workers is not None else params.audio.workers
    log.info("%s: extracting features from %d audio file(s) with %d worker(s)", name, len(files), n_workers)
    extracted = extract_files(files, params.audio, n_workers=n_workers, progress=progress)
    if extracted.tracks.empty:
        reasons = "; ".join(f"{Path(e.path).name}: {e.reason}" for e in extracted.errors[:10])
        raise AudioBatchError(f"{source}: no readable audio file among {len(files)}: {reasons}")

    # Missing by design, or not estimable for some file of this batch (silence: no key, tempo or loudness).
    nullable = [c for c in TRACK_COLUMNS if c in MISSING_COLUMNS or extracted.tracks[c].isna().any()]
    nullable = [c for c in nullable if c not in ("artists", "album_name", "track_name")]
    keep, rule_errors, report = _out_of_range(paths, params, extracted, nullable)
    tracks = extracted.tracks[keep].reset_index(drop=True)
    descriptors = extracted.descriptors[keep].reset_index(drop=True)
    errors = [*extracted.errors, *rule_errors]
    if tracks.empty:
        raise AudioBatchError(f"{source}: no file has features the scoring suite accepts: {rule_errors[0]}")

    summary: dict[str, Any] = {
        "batch": name,
        "source": str(source),
        "files": len(files),
        "files_ignored": len(others),  # not audio by extension (e.g. licence .txt files)
        "tracks": len(tracks),
        "errors": [dataclasses.asdict(e) for e in errors],
        "workers": extracted.workers,
        "audio_seconds": round(extracted.audio_seconds, 3),
        "analysed_seconds": round(extracted.analysed_seconds, 3),
        "wall_seconds": round(extracted.wall_seconds, 3),
        # seconds of audio analysed per wall-clock second, per worker (start-up of the workers included)
        "audio_seconds_per_second_per_core": round(extracted.seconds_per_second_per_core, 2),
        "nullable_columns": nullable,
        "columns": {c: s.source for c, s in COLUMN_SOURCES.items()},
        "output_dir": str(paths.audio_batch(name)),
    }
    with atomic_dir(paths.audio_batch(name)) as folder:
        write_parquet(tracks, folder / "tracks.parquet")
        write_parquet(descriptors, folder / "descriptors.parquet")
        write_json({c: dataclasses.asdict(s) for c, s in COLUMN_SOURCES.items()}, folder / "columns.json")
        write_json(summary["errors"], folder / "errors.json")
        (folder / "validation.html").write_text(report, encoding="utf-8")
        write_json(summary, folder / "extract.json")
    for error in errors:
        log.warning("%s: skipped %s: %s", name, error.path, error.reason)
    log.info(
        "%s: %d of %d file(s) extracted, %.1f s of audio in %.1f s (%.1f s of audio per second per core)",
        name,
        len(tracks),
        len(files),
        extracted.analysed_seconds,
        extracted.wall_seconds,
        extracted.seconds_per_second_per_core,
    )
    return summary


def file_summary(
    extract: dict[str, Any], tracks: pd.DataFrame, descriptors: pd.DataFrame, predictions: pd.DataFrame | None
) -> pd.DataFrame:
    """One row per file of the batch, in file order: scored / error, its main features, its predictions."""
    columns = descriptors[["track_id", "path", "duration_s", "key_name", "time_signature_estimated"]].merge(
        tracks[["track_id", "tempo", "time_signature", "loudness", "energy", "danceability"]], on="track_id"
    )
    if predictions is not None:
        wanted = ["track_id", *(c for c in PREDICTION_COLUMNS.values() if c in predictions.columns)]
        columns = columns.merge(predictions[wanted], on="track_id", how="left")
        columns.insert(2, "status", "scored")
        columns.loc[columns[wanted[-1]].isna(), "status"] = "quarantined"
    else:
        columns.insert(2, "status", "extracted")
    errors = pd.DataFrame(extract["errors"], columns=["path", "reason"]).assign(status="error")
    rows = pd.concat([columns.assign(reason=None), errors], ignore_index=True)
    rows.insert(0, "file", rows["path"].map(lambda p: Path(p).name))
    return rows.sort_values("path", kind="stable").reset_index(drop=True)


def score_audio(paths: ProjectPaths, params: Params, batch: str) -> dict[str, Any]:
    """Score an extracted batch with the champions (scoring.score_frame) and write files.csv."""
    folder = paths.audio_batch(batch)
    if not (folder / "extract.json").is_file():
        raise AudioBatchError(f"audio batch {batch!r} was not extracted (no {folder / 'extract.json'})")
    extract = read_json(folder / "extract.json")
    tracks = pd.read_parquet(folder / "tracks.parquet")
    descriptors = pd.read_parquet(folder / "descriptors.parquet")
    scored = score_frame(
        paths,
        params,
        tracks[list(TRACK_COLUMNS)],
        batch,
        nullable_columns=extract["nullable_columns"],
        source=folder / "tracks.parquet",  # drift monitoring reads the batch's rows back from here
    )
    predictions = pd.read_parquet(scored["predictions_path"])
    files = file_summary(extract, tracks, descriptors, predictions)
    files_path = folder / "files.csv"
    write_text(files.to_csv(index=False), files_path)
    return {
        **scored,
        "files_path": str(files_path),
        "files": files.drop(columns=["path"]).to_dict(orient="records"),
        "errors": extract["errors"],
    }


def format_files(files: list[dict[str, Any]]) -> str:
    """The per-file summary as a text table for the terminal."""
    frame = pd.DataFrame(files)
    shown = [
        c
        for c in ("file", "status", "key_name", "tempo", "loudness", *PREDICTION_COLUMNS.values())
        if c in frame.columns
    ]
    table = frame[shown].rename(
        columns={
            "key_name": "key",
            "predicted_popularity": "popularity",
            "hit_probability": "hit_p",
            "predicted_genre": "genre",
            "loudness": "LUFS",
        }
    )
    lines = [table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")]
    for row in files:
        if row.get("status") == "error":
            lines.append(f"  skipped {row['file']}: {row['reason']}")
    return "\n".join(lines)
