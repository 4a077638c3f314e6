"""`python -m bench`: run the benchmark sections and write BENCHMARKS.md (`make bench` runs it)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    audio,
    drift,
    environment,
    genre_input,
    quality,
    repro,
    scoring,
    serving,
    training,
    validation,
)
from bench.harness import (
    REPO,
    BenchError,
    Context,
    Section,
    host_cpu_ticks,
    read_results,
    say,
    steal_share,
    write_result,
)
from bench.report import render

# In the order they run: training makes the project roots the later sections measure.
SECTIONS: dict[str, Section] = {
    "environment": environment.run,
    "training": training.run,
    "dvc": repro.run,
    "scoring": scoring.run,
    "serving": serving.run,
    "validation": validation.run,
    "drift": drift.run,
    "genre-input": genre_input.run,
    "audio": audio.run,
    "quality": quality.run,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure trackflow against its baselines and write BENCHMARKS.md. Asserts nothing about "
        "time; exits non-zero only when a section could not be measured.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"run these sections only (of: {', '.join(SECTIONS)}); the other results files are kept",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per cheap figure (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="small sample, tiny budgets: for developing the suite"
    )
    parser.add_argument(
        "--tracks-csv", type=Path, help="the dataset (default: TRACKS_CSV, then data/raw/dataset.csv)"
    )
    parser.add_argument("--audio-dir", type=Path, help="audio clips (default: ../shared/data/audio)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the temporary project roots go (default: a new temporary folder, removed at the end); "
        "pass the folder of an earlier --keep run to rerun later sections on its trained projects",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--project",
        type=Path,
        help="an already trained project root for scoring, serving, validation, drift and audio instead of "
        "the suite's own training run; they write into it (batches, predictions, MLflow runs): pass a copy",
    )
    parser.add_argument(
        "--results", type=Path, help="results folder (default bench/results, bench/results/quick)"
    )
    parser.add_argument(
        "--output", type=Path, help="the report (default BENCHMARKS.md; with --quick, in results)"
    )
    parser.add_argument("--report-only", action="store_true", help="render the report from existing results")
    parser.add_argument(
        "--child-timeout", type=float, default=3 * 3600, help="seconds before a stuck child is killed"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results_dir = (args.results or REPO / "bench" / "results" / ("quick" if args.quick else "")).resolve()
    output = (
        args.output or (results_dir / "BENCHMARKS.md" if args.quick else REPO / "BENCHMARKS.md")
    ).resolve()
    if args.report_only:
        output.write_text(render(read_results(results_dir)), encoding="utf-8")
        say(f"report written: {output}")
        return 0

    chosen = [name for name in SECTIONS if not args.only or name in args.only]
    complete = args.only is None
    if complete and results_dir.is_dir():
        # From scratch: no figure of an earlier run survives into this report.
        for stale in results_dir.glob("*.json"):
            stale.unlink()
        shutil.rmtree(results_dir / "logs", ignore_errors=True)
    workdir = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="trackflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        repo=REPO,
        work=workdir,
        results=results_dir,
        repeats=args.repeats,
        quick=args.quick,
        tracks_csv=args.tracks_csv.resolve() if args.tracks_csv else None,
        audio_dir=args.audio_dir.resolve() if args.audio_dir else None,
        child_timeout_s=args.child_timeout,
        project=args.project.resolve() if args.project else None,
    )
    say(f"sections {', '.join(chosen)}; work folder {workdir}; results {results_dir}")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    run_ticks = host_cpu_ticks()
    failed = []
    try:
        for name in chosen:
            section_started = time.perf_counter()
            section_ticks = host_cpu_ticks()
            say(f"== {name} ==")
            try:
                data = SECTIONS[name](ctx)
                status = "ok"
            except audio.Skipped as exc:
                data, status = {"reason": str(exc)}, "skipped"
                say(f"{name} skipped: {exc}")
            except Exception as exc:  # one section failing is reported; the others still run
                detail = str(exc) if isinstance(exc, BenchError) else traceback.format_exc()
                data, status = {"error": detail}, "error"
                failed.append(name)
                say(f"{name} FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            data = {**data, "cpu_steal_share": steal_share(section_ticks, host_cpu_ticks())}
            write_result(ctx, name, status, time.perf_counter() - section_started, data)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    write_result(
        ctx,
        "run",
        "ok" if not failed else "error",
        total,
        {
            "started_at": started_at,
            "total_s": total,
            "sections": chosen,
            "complete": complete and not failed,
            "failed": failed,
            "cores": len(os.sched_getaffinity(0)),
            "cpu_steal_share": steal_share(run_ticks, host_cpu_ticks()),
            "repeats": args.repeats,
            "argv": sys.argv[1:] if argv is None else argv,
        },
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(read_results(results_dir)), encoding="utf-8")
    say(f"done in {total / 60:.1f} min; report written: {output}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
