"""Audio feature extraction (`components.audio.extract_files`) on the real clips in ../shared/data/audio:
seconds of audio analysed per second of wall time, per core, with one worker and with one worker per core.

The wall time of a batch includes starting its worker processes; the analysis alone (the sum of the
per-file extraction times) is reported beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.format import megabytes, ranged, table
from bench.harness import BenchError, Context, run_job, say, spread
from trackflow.stages.common import params_for

QUICK_FILES = 2  # --quick: the smallest clips only
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # params.yaml audio.extensions


class Skipped(BenchError):
    """Nothing to measure here (no clips): the report says so instead of a figure."""


def find_clips(ctx: Context) -> Path:
    """The clips folder: --audio-dir, else ../shared/data/audio beside the checkout."""
    candidates = [ctx.audio_dir, ctx.repo.parent / "shared" / "data" / "audio"]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_dir():
            folder = Path(candidate).resolve()
            if any(p.suffix.lower() in AUDIO_SUFFIXES for p in folder.rglob("*") if p.is_file()):
                return folder
    raise Skipped(f"no audio clips: pass --audio-dir (looked in {[str(c) for c in candidates if c]})")


def audio_job(root: str, folder: str, workers: int, repeats: int, limit: int | None = None) -> dict[str, Any]:
    """Child job: extract every clip in `folder` `repeats` times with `workers` worker processes."""
    from components.audio import extract_files, find_audio_files
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(root)
    config = params_for(paths).audio
    files, _ = find_audio_files(Path(folder), config.extensions, recursive=config.recursive)
    if limit is not None:
        files = sorted(files, key=lambda p: p.stat().st_size)[:limit]
    if not files:
        raise Skipped(f"{folder}: no audio files with extensions {config.extensions}")
    runs = []
    for _ in range(repeats):
        batch = extract_files(files, config, n_workers=workers)
        if batch.errors:
            raise BenchError(f"audio extraction failed on {len(batch.errors)} file(s): {batch.errors[:3]}")
        runs.append(
            {
                "wall_s": batch.wall_seconds,
                "workers": batch.workers,
                "audio_s": batch.audio_seconds,
                "analysed_s": batch.analysed_seconds,
                "extract_s": float(batch.descriptors["extract_seconds"].sum()),
            }
        )
    return {
        "files": [f.name for f in files],
        "bytes": sum(f.stat().st_size for f in files),
        "sample_rate": config.sample_rate,
        "runs": runs,
    }


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time, audio seconds per wall second per core, and per analysis second, over `runs`."""
    return {
        "wall_s": spread([r["wall_s"] for r in runs]),
        "per_core": spread([r["analysed_s"] / r["wall_s"] / r["workers"] for r in runs]),
        "analysis_only": spread([r["analysed_s"] / r["extract_s"] for r in runs]),
    }


def run(ctx: Context) -> dict[str, Any]:
    folder = find_clips(ctx)
    root = ctx.flow_root if (ctx.flow_root / "params.yaml").is_file() else ctx.base_root
    if not (root / "params.yaml").is_file():
        root = ctx.repo
    cores = len(os.sched_getaffinity(0))
    results: dict[str, Any] = {"folder": str(folder), "cores": cores, "configs": {}}
    for workers in dict.fromkeys((1, cores)):
        args = {
            "root": str(root),
            "folder": str(folder),
            "workers": workers,
            "repeats": ctx.repeats,
            "limit": QUICK_FILES if ctx.quick else None,
        }
        say(f"audio: {folder.name}/ with {workers} worker(s) x{ctx.repeats} ...")
        data = run_job(ctx, f"audio-{workers}", "bench.audio:audio_job", args, root).as_dict()
        runs = data["runs"]
        used = runs[0]["workers"]
        # The first batch of a process pays for imports and first-call compilation; with one worker the
        # later batches reuse the process (warm), with a pool every batch starts its own workers.
        data["first"] = summarise_runs(runs[:1])
        data["later"] = summarise_runs(runs[1:]) if len(runs) > 1 else None
        results["configs"][str(used)] = data
        steady = data["later"] or data["first"]
        say(
            f"audio, {used} worker(s): {steady['per_core']['median']:.1f} s of audio per second per core "
            f"({runs[0]['analysed_s']:.1f} s of audio; first batch {data['first']['wall_s']['median']:.1f} s)"
        )
    return results


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def render(data: Mapping[str, Any]) -> list[str]:
    rows = []
    first = next(iter(data["configs"].values()))
    for workers, entry in data["configs"].items():
        analysed = entry["runs"][0]["analysed_s"]
        for label, part in (("first batch", entry["first"]), ("later batches", entry.get("later"))):
            if part is None:
                continue
            rows.append(
                [
                    workers,
                    label,
                    f"{analysed:.1f} s",
                    ranged(part["wall_s"]),
                    f"**{ranged(part['per_core'], _one_decimal)}**",
                    ranged(part["analysis_only"], _one_decimal),
                    megabytes(entry["peak_rss_mb"]),
                ]
            )
    return [
        f"{len(first['files'])} clips from `{data['folder']}` ({first['bytes'] / 1e6:.1f} MB; "
        f"{', '.join(first['files'])}), decoded at {first['sample_rate']} Hz; {len(first['runs'])} batches "
        "per worker count, each in one child process.",
        "",
        *table(
            [
                "workers",
                "batch",
                "audio per batch",
                "wall time",
                "audio s per wall s per core",
                "audio s per analysis s",
                "peak memory (largest process)",
            ],
            rows,
        ),
        "",
        "The first batch of a process pays for imports and first-call compilation. With one worker the "
        "files are analysed in the process itself, so later batches are warm; with a pool, every batch "
        "starts its own spawned workers (one thread each), which import the libraries again. `audio s per "
        "analysis s` divides by the sum of the per-file extraction times (no pool start-up).",
    ]
