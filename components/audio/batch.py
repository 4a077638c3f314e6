"""Extract features from many audio files in parallel: one row per readable file in the dataset's schema
(without the labels), extra descriptors beside it, and a per-file error for every file that could not be
read. A bad file never stops the batch.

Workers come from a fork server: a fresh interpreter started once per process (so, like spawn, safe beside
the threads of e.g. Prefect's task runner) that imports librosa once; each worker is forked from it ready to
work. Spawned workers would each import librosa again, whose beat module compiles numba helpers on import
(about 5 s of CPU per worker, measured). Where there is no fork server (Windows), workers are spawned. Each
worker is limited to one thread in the numeric libraries, so n workers use n cores. The worker function is
top level so it pickles; nothing runs at import time.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import math
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.audio.decode import AudioDecodeError, decode_file
from components.audio.features import PITCH_CLASSES, analyse
from components.params import AudioParams
from components.schema import COLUMNS, LABEL_COLUMNS, RAW_SCHEMA

# The dataset schema without the labels, in the dataset's order.
TRACK_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in LABEL_COLUMNS)
TRACK_ID_PREFIX = "audio"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_DIGITS = 22 - len(TRACK_ID_PREFIX)
_INTEGER_COLUMNS = ("key", "mode", "time_signature")  # may be missing: nullable Int64


@dataclass(frozen=True)
class FileError:
    path: str
    reason: str


@dataclass(frozen=True)
class AudioBatch:
    tracks: pd.DataFrame  # TRACK_COLUMNS, one row per readable file
    descriptors: pd.DataFrame  # track_id, path, file facts, flags and MFCC/chroma/contrast/onset summaries
    errors: list[FileError] = field(default_factory=list)
    audio_seconds: float = 0.0  # total duration of the readable files
    analysed_seconds: float = 0.0
    wall_seconds: float = 0.0
    workers: int = 1

    @property
    def seconds_per_second_per_core(self) -> float:
        """Analysed audio seconds per wall-clock second, divided by the workers used."""
        if self.wall_seconds <= 0:
            return math.nan
        return self.analysed_seconds / self.wall_seconds / self.workers


def find_audio_files(
    folder: Path, extensions: Sequence[str], *, recursive: bool = True
) -> tuple[list[Path], list[Path]]:
    """(audio files, other files) under `folder`, sorted; audio = an extension in `extensions`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    wanted = {e.lower() for e in extensions}
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    audio, other = [], []
    for path in sorted(p for p in candidates if p.is_file() and not p.name.startswith(".")):
        (audio if path.suffix.lower().lstrip(".") in wanted else other).append(path)
    return audio, other


def content_track_id(path: Path) -> tuple[str, str]:
    """(track_id, sha256) of a file's bytes: the same content gives the same id wherever it lies.

    The id keeps the dataset's track_id form (22 base-62 characters, which the expectation suite checks) and
    is marked as audio-derived: "audio" + 17 base-62 digits (101 bits) of the sha256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    sha = digest.hexdigest()
    number, digits = int(sha, 16), []
    while len(digits) < _ID_DIGITS:
        number, remainder = divmod(number, 62)
        digits.append(_BASE62[remainder])
    return TRACK_ID_PREFIX + "".join(digits), sha


def is_audio_track_id(track_id: str) -> bool:
    return len(track_id) == 22 and track_id.startswith(TRACK_ID_PREFIX) and track_id.isalnum()


# What the fork server imports before forking workers ("__main__": the calling program, which workers would
# otherwise re-import each). set_forkserver_preload is process-wide; it only takes effect before the server
# starts, and a server started by other code merely means slower worker start-up.
_PRELOAD = ("__main__", "components.audio.batch", "librosa.beat", "librosa.feature", "librosa.onset")


def _pool_context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_PRELOAD))
    return context


def _limit_threads() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _init_worker() -> None:
    # Applied for the worker's lifetime: BLAS and OpenMP pools of numpy/scipy/librosa at one thread.
    _limit_threads()


def extract_one(path: str, config: AudioParams) -> dict[str, Any]:
    """Worker: {"path", "track": row, "descriptors": {...}} or {"path", "error": reason}; never raises for a
    bad file."""
    started, started_cpu = time.perf_counter(), time.process_time()
    file_path = Path(path)
    try:
        extension = file_path.suffix.lower().lstrip(".")
        if extension not in config.extensions:
            supported = ", ".join(config.extensions)
            raise AudioDecodeError(f"unsupported file type '.{extension}' (audio.extensions: {supported})")
        decoded = decode_file(
            file_path, config.sample_rate, max_seconds=config.max_seconds, min_seconds=config.min_seconds
        )
        track_id, sha = content_track_id(file_path)
        columns, descriptors = analyse(decoded.samples, config)
    except AudioDecodeError as exc:
        return {"path": path, "error": str(exc)}
    except Exception as exc:  # a decoder or analysis bug on one file must not sink the batch
        return {"path": path, "error": f"analysis failed: {type(exc).__name__}: {exc}"}
    track = {
        "track_id": track_id,
        "artists": None,
        "album_name": None,
        "track_name": file_path.stem,
        "duration_ms": round(decoded.duration_s * 1000),
        "explicit": False,  # unknown: lyrics are not analysed
        **columns,
    }
    key, mode = columns.get("key"), columns.get("mode")
    descriptors = {
        "track_id": track_id,
        "path": str(file_path),
        "file_bytes": file_path.stat().st_size,
        "sha256": sha,
        "decoder": decoded.decoder,
        "container": decoded.container,
        "native_sample_rate": decoded.native_sample_rate,
        "channels": decoded.channels,
        "duration_s": decoded.duration_s,
        "analysed_s": decoded.analysed_s,
        "truncated_analysis": decoded.truncated_analysis,
        "key_name": None if key is None else f"{PITCH_CLASSES[key]} {'major' if mode == 1 else 'minor'}",
        "explicit_known": False,
        **descriptors,
        "extract_seconds": time.perf_counter() - started,
        # CPU time of this file in its (single-threaded) worker: speed per core, whatever else runs.
        "extract_cpu_seconds": time.process_time() - started_cpu,
    }
    return {"path": path, "track": track, "descriptors": descriptors}


def _run_serial(paths: list[str], config: AudioParams, progress: Any) -> dict[str, dict[str, Any]]:
    results = {}
    with _limit_threads():
        for path in paths:
            results[path] = extract_one(path, config)
            progress.update(1)
    return results


def _run_pool(
    paths: list[str], config: AudioParams, n_workers: int, progress: Any
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    crashed: list[str] = []
    context = _pool_context()
    with cf.ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(extract_one, path, config): path for path in paths}
        for future in cf.as_completed(futures):
            path = futures[future]
            try:
                results[path] = future.result()
            except cf.process.BrokenProcessPool:
                crashed.append(path)
                continue
            progress.update(1)
    # A worker died (a decoder crash takes the whole pool down): retry those files one process each, so
    # that the culprit is named and the innocent files still get their features.
    for path in crashed:
        with cf.ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker) as pool:
            try:
                results[path] = pool.submit(extract_one, path, config).result()
            except cf.process.BrokenProcessPool:
                results[path] = {"path": path, "error": "the decoder crashed the worker process"}
        progress.update(1)
    return results


def _tracks_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
    for name in TRACK_COLUMNS:
        arrow = RAW_SCHEMA.field(name).type
        if name in ("track_id", "artists", "album_name", "track_name"):
            frame[name] = frame[name].astype("string")
        elif name == "explicit":
            frame[name] = frame[name].astype(bool)
        elif name in _INTEGER_COLUMNS:
            frame[name] = pd.array(
                [
                    None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                    for v in frame[name]
                ],
                dtype="Int64",
            )
        elif str(arrow) == "int64":
            frame[name] = frame[name].astype(np.int64)
        else:
            frame[name] = frame[name].astype(np.float64)
    return frame


def extract_files(
    paths: Sequence[Path | str], config: AudioParams, n_workers: int = 1, progress: bool = False
) -> AudioBatch:
    """Features of every file in `paths` (in that order); unreadable files become `errors` with the reason.
    The same content twice is analysed once: later copies are reported as errors naming the first."""
    from tqdm.auto import tqdm

    ordered = list(dict.fromkeys(str(Path(p)) for p in paths))
    started = time.perf_counter()
    workers = max(1, min(int(n_workers), len(ordered))) if ordered else 1
    with tqdm(total=len(ordered), desc="audio features", unit="file", disable=not progress) as bar:
        if workers == 1:
            results = _run_serial(ordered, config, bar)
        else:
            results = _run_pool(ordered, config, workers, bar)
    wall = time.perf_counter() - started

    tracks, descriptors, errors = [], [], []
    first_path: dict[str, str] = {}
    for path in ordered:
        result = results[path]
        if "error" in result:
            errors.append(FileError(path, result["error"]))
            continue
        track_id = result["track"]["track_id"]
        if track_id in first_path:
            errors.append(FileError(path, f"same content as {first_path[track_id]} ({track_id}): kept once"))
            continue
        first_path[track_id] = path
        tracks.append(result["track"])
        descriptors.append(result["descriptors"])
    descriptor_frame = pd.DataFrame(
        descriptors or None, columns=None if descriptors else ["track_id", "path"]
    )
    return AudioBatch(
        tracks=_tracks_frame(tracks),
        descriptors=descriptor_frame,
        errors=errors,
        audio_seconds=float(descriptor_frame["duration_s"].sum()) if descriptors else 0.0,
        analysed_seconds=float(descriptor_frame["analysed_s"].sum()) if descriptors else 0.0,
        wall_seconds=wall,
        workers=workers,
    )
