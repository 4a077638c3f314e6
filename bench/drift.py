"""A drift report (Evidently 0.7, `components.drift.drift_report`) of the whole ingested dataset against a
seeded resample of the same size: the 14 input columns of the drift monitor, HTML included. The monitor's
prediction columns are a second, 3-column report in `drift_check` and are not part of this figure."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.format import megabytes, ranged
from bench.harness import BenchError, Context, run_job, say, spread
from trackflow.stages.common import params_for

SEED = 42


def drift_job(root: str, repeats: int) -> dict[str, Any]:
    """Child job: `repeats` drift reports, reference = every ingested row, current = a resample of as many."""
    import pandas as pd

    from components.drift import CATEGORICAL_FEATURES, NUMERICAL_FEATURES, drift_report
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(root)
    params = params_for(paths)
    reference = pd.read_parquet(paths.interim_tracks)
    current = reference.sample(n=len(reference), replace=True, random_state=SEED).reset_index(drop=True)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = drift_report(reference, current, drift_share=params.drift.drift_share)
        runs.append(
            {
                "wall_s": time.perf_counter() - started,
                "drift_share": result.drift_share,
                "drifted_columns": result.drifted_columns,
                "html_bytes": len(result.html.encode("utf-8")),
            }
        )
    return {
        "rows_reference": len(reference),
        "rows_current": len(current),
        "columns": len(NUMERICAL_FEATURES) + len(CATEGORICAL_FEATURES),
        "runs": runs,
    }


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.flow_root
    if not (root / "data" / "interim" / "tracks.parquet").is_file():
        raise BenchError(f"{root} has no ingested data: run the training section first")
    say(f"drift: report x{ctx.repeats} ...")
    data = run_job(
        ctx, "drift", "bench.drift:drift_job", {"root": str(root), "repeats": ctx.repeats}, root
    ).as_dict()
    data["wall_s"] = spread([r["wall_s"] for r in data["runs"]])
    say(
        f"drift of {data['rows_current']:,} vs {data['rows_reference']:,} rows: "
        f"{data['wall_s']['median']:.2f} s, peak {data['peak_rss_mb']:.0f} MB"
    )
    return data


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def render(data: Mapping[str, Any]) -> list[str]:
    last = data["runs"][-1]
    return [
        f"`components.drift.drift_report`: {data['rows_current']:,} rows against {data['rows_reference']:,} "
        "(every ingested row as the reference, a seeded resample of as many as the batch), "
        f"{data['columns']} input columns, HTML included: **{ranged(data['wall_s'])}**, peak memory "
        f"{megabytes(data['peak_rss_mb'])}. Drift share {last['drift_share']:.2f} (an iid resample: none "
        f"expected), report {last['html_bytes'] / 1e6:.1f} MB. The monitor's prediction drift is a second "
        "report over 3 columns, not included.",
    ]
