"""Batch scoring: rows per second through the `batch_scoring` flow (read in chunks, validation gate, the three
champions, predictions written) against the champions' own `predict` on the same rows already in memory.

The batches are the dataset's rows without the labels. The scoring gate rejects a batch with more than 5%
exact duplicate rows or 35% repeated track ids, and the dataset lists a track once per genre (identical
rows once the genre is gone), so every row gets a new, unique, well-formed track id ("bench" + 17 base-62
digits of its row number). Nothing else changes: track_id is not a model input (the models select their
inputs by name and the id feature group is off), so the predictions are those of the original rows.
The 1,000,000-row batch is a seeded resample with replacement of the 114,000 rows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.format import megabytes, ranged, rate, seconds, table
from bench.harness import BenchError, Context, run_job, say, spread
from trackflow.stages import scoring as scoring_stage
from trackflow.stages.common import params_for

FULL_SIZES = (114_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
# Batches above this size run once: a 1,000,000-row run takes minutes in each mode.
SINGLE_RUN_ABOVE = 200_000
SEED = 42
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_PREFIX = "bench"


def unique_track_ids(n: int, prefix: str = ID_PREFIX) -> np.ndarray:
    """n distinct 22-character base-62 ids: `prefix` then the row number in base 62, zero-padded."""
    digits = 22 - len(prefix)
    if n > 62**digits:
        raise ValueError(f"{n} ids do not fit in {digits} base-62 digits")
    numbers = np.arange(n, dtype=np.int64)
    chars = np.empty((n, digits), dtype="<U1")
    for position in range(digits - 1, -1, -1):
        chars[:, position] = np.array(list(_BASE62))[numbers % 62]
        numbers //= 62
    return np.char.add(prefix, np.array(["".join(row) for row in chars]))


def scoring_batch(listings: Any, n_rows: int, seed: int = SEED) -> Any:
    """`n_rows` rows of `listings` (all of them in order when n_rows equals their number, else a seeded
    resample with replacement) without labels or ingest bookkeeping, each with a unique track id. A new
    frame: `listings` is not modified."""
    from components.ingest import INGEST_ERRORS
    from components.schema import LABEL_COLUMNS, ROW_NUMBER

    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    rows = listings if n_rows == len(listings) else listings.sample(n=n_rows, replace=True, random_state=seed)
    drop = [c for c in (*LABEL_COLUMNS, ROW_NUMBER, INGEST_ERRORS) if c in rows.columns]
    batch = rows.drop(columns=drop).reset_index(drop=True)
    batch["track_id"] = unique_track_ids(n_rows)
    batch["track_id"] = batch["track_id"].astype("string")
    return batch


def prepare_job(root: str, sizes: list[int]) -> dict[str, Any]:
    """Child job: write one parquet batch per size under data/bench/ from the ingested listings."""
    import pandas as pd

    from components.io import write_parquet
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(root)
    listings = pd.read_parquet(paths.interim_tracks)
    out = {}
    for size in sizes:
        target = paths.root / "data" / "bench" / f"score-{size}.parquet"
        write_parquet(scoring_batch(listings, size), target)
        out[str(size)] = {"path": str(target), "bytes": target.stat().st_size}
    return {"source_rows": len(listings), "batches": out}


def flow_job(root: str, batch: str, repeats: int) -> dict[str, Any]:
    """Child job: the batch_scoring flow on one batch file, `repeats` times (each rescoring replaces the
    predictions whole). Wall time covers the flow call: champions loaded, chunks read, validated, scored,
    written."""
    from bench.training import warm_up_prefect

    prefect_start_s = warm_up_prefect()
    from flows.batch_scoring import batch_scoring

    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = batch_scoring(root=root, batch=batch)
        wall = time.perf_counter() - started
        if not result["scored"]:
            raise BenchError(f"batch {batch} was not scored: {result['rejected']}")
        summary = result["scored"][0]
        runs.append(
            {
                "wall_s": wall,
                "rows_in": summary["rows_in"],
                "rows_scored": summary["rows_scored"],
                "stage_seconds": summary["seconds"],  # the stage's own clock, after loading the models
                "models": {t: m["version"] for t, m in summary["models"].items()},
            }
        )
    return {"prefect_start_s": prefect_start_s, "runs": runs}


def predict_job(root: str, batch: str, repeats: int) -> dict[str, Any]:
    """Child job: the champions' pyfunc `predict` on the batch already in memory, as the flow scores a
    batch without genres (each model on the raw rows; popularity and hit answer through their genre-free
    fallback). Only the predict calls are timed; loading the models and reading the file are reported
    apart."""
    import pandas as pd

    from components.schema import GENRE, LABEL_COLUMNS
    from components.scoring import SCORING_ORDER, conform_to_signature, plain_inputs
    from trackflow.paths import ProjectPaths

    paths = ProjectPaths.at(root)
    started = time.perf_counter()
    champions = scoring_stage.load_champions(paths, params_for(paths))
    load_s = time.perf_counter() - started
    if not champions:
        raise BenchError(f"{root}: no champion registered")
    started = time.perf_counter()
    frame = pd.read_parquet(batch)
    read_s = time.perf_counter() - started
    inputs = plain_inputs(frame.drop(columns=[c for c in LABEL_COLUMNS if c in frame.columns]))
    inputs = inputs.assign(**{GENRE: None})
    prepared = {}
    for task in SCORING_ORDER:
        if task in champions:
            model = champions[task].model
            schema = model.metadata.get_input_schema()
            names = schema.input_names() if schema and schema.has_input_names() else list(inputs.columns)
            prepared[task] = conform_to_signature(inputs[names], model)

    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for task, model_input in prepared.items():
            answer = np.asarray(champions[task].model.predict(model_input))
            if len(answer) != len(frame):
                raise BenchError(f"{task} answered {len(answer)} rows for {len(frame)}")
        runs.append({"wall_s": time.perf_counter() - started})
    return {
        "rows": len(frame),
        "load_models_s": load_s,
        "read_s": read_s,
        "runs": runs,
        "models": {t: c.version for t, c in champions.items()},
    }


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.flow_root
    if not (root / "data" / "interim" / "tracks.parquet").is_file():
        raise BenchError(f"{root} has no trained project: run the training section first")
    sizes = list(QUICK_SIZES if ctx.quick else FULL_SIZES)
    prepared = run_job(
        ctx, "scoring-prepare", "bench.scoring:prepare_job", {"root": str(root), "sizes": sizes}, root
    )
    results: dict[str, Any] = {
        "sizes": {},
        "id_prefix": ID_PREFIX,
        "source_rows": prepared.payload["source_rows"],
    }
    for size in sizes:
        batch = prepared.payload["batches"][str(size)]["path"]
        repeats = 1 if size > SINGLE_RUN_ABOVE else ctx.repeats
        args = {"root": str(root), "batch": batch, "repeats": repeats}
        say(f"scoring {size:,} rows: flow x{repeats} ...")
        flow = run_job(ctx, f"scoring-flow-{size}", "bench.scoring:flow_job", args, root).as_dict()
        say(f"scoring {size:,} rows: model.predict x{repeats} ...")
        direct = run_job(ctx, f"scoring-predict-{size}", "bench.scoring:predict_job", args, root).as_dict()
        flow_rate = spread([r["rows_scored"] / r["wall_s"] for r in flow["runs"]])
        predict_rate = spread([direct["rows"] / r["wall_s"] for r in direct["runs"]])
        entry = {
            "rows": size,
            "repeats": repeats,
            "batch_bytes": prepared.payload["batches"][str(size)]["bytes"],
            "flow": {
                **flow,
                "rows_per_s": flow_rate,
                "stage_rows_per_s": spread([r["rows_scored"] / r["stage_seconds"] for r in flow["runs"]]),
                "wall_s": spread([r["wall_s"] for r in flow["runs"]]),
            },
            "predict": {
                **direct,
                "rows_per_s": predict_rate,
                "wall_s": spread([r["wall_s"] for r in direct["runs"]]),
            },
            "ratio": flow_rate["median"] / predict_rate["median"],
        }
        results["sizes"][str(size)] = entry
        say(
            f"scoring {size:,} rows: flow {flow_rate['median']:,.0f} rows/s, predict "
            f"{predict_rate['median']:,.0f} rows/s, ratio {entry['ratio']:.2f}; peak "
            f"{flow['peak_rss_mb']:.0f} / {direct['peak_rss_mb']:.0f} MB"
        )
    return results


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def render(data: Mapping[str, Any]) -> list[str]:
    rows = []
    for size, entry in data["sizes"].items():
        flow, predict = entry["flow"], entry["predict"]
        rows.append(
            [
                f"{int(size):,}",
                ranged(flow["rows_per_s"], rate),
                ranged(flow["stage_rows_per_s"], rate),
                ranged(predict["rows_per_s"], rate),
                f"**{entry['ratio']:.2f}**",
                ranged(flow["wall_s"]),
                ranged(predict["wall_s"]),
                megabytes(flow["peak_rss_mb"]),
                megabytes(predict["peak_rss_mb"]),
            ]
        )
    first = next(iter(data["sizes"].values()))
    models = ", ".join(f"{t} v{v}" for t, v in first["predict"]["models"].items())
    return [
        *table(
            [
                "rows",
                "flow rows/s",
                "flow rows/s, models loaded",
                "`model.predict` rows/s",
                "ratio",
                "flow wall",
                "predict wall",
                "flow peak memory",
                "predict peak memory",
            ],
            rows,
        ),
        "",
        f"Champions {models}. **Flow**: `flows.batch_scoring.batch_scoring(root, batch)` on a parquet batch "
        "file: loading the champions, reading in chunks, the scoring validation gate, the three models, the "
        "predictions file and its summary. **`model.predict`**: the same three pyfunc models' `predict` on "
        "the same rows already in memory, each on the raw rows as the flow scores a batch without genres "
        "(popularity and hit answer through their genre-free fallback); loading the models "
        f"({seconds(first['predict']['load_models_s'])}) and reading the file "
        f"({seconds(first['predict']['read_s'])}) are not in its time. Ratio = flow rows/s "
        "÷ predict rows/s. `flow rows/s, models loaded` is the scoring stage's own clock, which starts "
        "after loading the champions.",
        "",
        f"The batches are the {data['source_rows']:,} ingested rows without labels; the larger one a seeded "
        f"resample with replacement. Every row gets a unique, well-formed track id (`{data['id_prefix']}` + "
        "17 base-62 digits): the dataset lists a track once per genre, and without its genre such a batch "
        "is over the gate's limits for duplicate rows (5%) and repeated ids (35%). Nothing else is changed, "
        "and the track id is not a model input. Batches above 200,000 rows ran once.",
    ]
