"""The validation gate on the whole ingested dataset: the component (`validate_tracks`, Great Expectations on
the in-memory frame) and the stage (`trackflow.validate`: file in, report, quarantine and validated
files out, an MLflow run)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.format import megabytes, ranged, rate, table
from bench.harness import BenchError, Context, run_job, say, spread
from trackflow.stages.common import params_for
from trackflow.stages.data import validate


def validate_job(root: str, repeats: int) -> dict[str, Any]:
    """Child job: the gate `repeats` times as a component call, then `repeats` times as the stage."""
    import pandas as pd

    from components.io import read_json
    from components.validation import validate_tracks
    from trackflow.config import load_suite
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(root)
    params = params_for(paths)
    frame = pd.read_parquet(paths.interim_tracks)
    columns = read_json(paths.ingest_meta)["columns_in_file"]
    suite = load_suite(paths.expectation_suite)
    component, stage = [], []
    summary: dict[str, Any] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        outcome = validate_tracks(frame, suite, params.validation, columns_in_file=columns)
        component.append({"wall_s": time.perf_counter() - started})
        summary = {k: v for k, v in outcome.summary.items() if isinstance(v, int | float | str | bool)}
    for _ in range(repeats):
        started = time.perf_counter()
        validate(paths, params)
        stage.append({"wall_s": time.perf_counter() - started})
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "summary": summary,
        "component": component,
        "stage": stage,
    }


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.flow_root
    if not (root / "data" / "interim" / "tracks.parquet").is_file():
        raise BenchError(f"{root} has no ingested data: run the training section first")
    say(f"validation: gate x{ctx.repeats} as a component, x{ctx.repeats} as the stage ...")
    job = run_job(
        ctx, "validation", "bench.validation:validate_job", {"root": str(root), "repeats": ctx.repeats}, root
    )
    data = job.as_dict()
    rows = data["rows"]
    for part in ("component", "stage"):
        walls = [r["wall_s"] for r in data[part]]
        data[part] = {
            "runs": data[part],
            "wall_s": spread(walls),
            "rows_per_s": spread([rows / w for w in walls]),
        }
    say(
        f"validation of {rows:,} rows: component {data['component']['wall_s']['median']:.2f} s, stage "
        f"{data['stage']['wall_s']['median']:.2f} s, peak {data['peak_rss_mb']:.0f} MB"
    )
    return data


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def render(data: Mapping[str, Any]) -> list[str]:
    summary = data["summary"]
    return [
        *table(
            ["what", "wall time", "rows/s"],
            [
                [
                    "`validate_tracks` (component, in memory)",
                    ranged(data["component"]["wall_s"]),
                    ranged(data["component"]["rows_per_s"], rate),
                ],
                [
                    "`trackflow.validate` (files, HTML report, MLflow run)",
                    ranged(data["stage"]["wall_s"]),
                    ranged(data["stage"]["rows_per_s"], rate),
                ],
            ],
        ),
        "",
        f"{data['rows']:,} ingested rows, {data['columns']} columns; {summary.get('rows_valid', 'n/a'):,} "
        f"valid, {summary.get('rows_quarantined', 'n/a'):,} quarantined. Peak memory "
        f"{megabytes(data['peak_rss_mb'])}.",
    ]
