"""Serving: the model server under a bounded load, and the shared inference path's batch throughput.

- **Latency**: `trackflow serve-models` started on the trained project (127.0.0.1, its own process), then one
  client asking `/predict` for one row at a time (a row with its genre, one without), then N clients at once
  with a fixed request count and a deadline. Each request is timed by its client, from sending to the parsed
  answer; popularity, hit and genre are answered together in every request. Clients and server share the
  machine's cores.
- **Batch**: the three champions' outputs for the same rows through the inference path
  (components/inference.py: features once per featurizer state, numpy features, one thread per small call)
  and through the path before it (`reference_outputs`: a frame per blend member, each library's public
  predict), in one process, alternately; the scoring gate's validation of the same batch beside them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.format import rate, table
from bench.harness import BenchError, Context, run_job, say, spread

SEED = 42
BATCH_ROWS = 50_000
QUICK_BATCH_ROWS = 5_000
WARMUP_REQUESTS = 50
# The targets of the summary: one row through the server, and the shared path's batch throughput.
P50_TARGET_MS = 10.0
P99_TARGET_MS = 30.0
ROWS_PER_S_TARGET = 50_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentiles(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and the mean of latencies, in milliseconds."""
    values = np.asarray(latencies_s, dtype="float64") * 1000.0
    if not len(values):
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
    }


def request_rows(root: str, n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """`n` seeded rows of the project's ingested tracks as request rows (no label, genre kept)."""
    import pandas as pd

    from trackflow.paths import ProjectPaths

    listings = pd.read_parquet(ProjectPaths.at(root).interim_tracks)
    picked = listings.sample(n=n, random_state=seed).drop(
        columns=["popularity", "source_row"], errors="ignore"
    )
    picked = picked.drop(columns=[c for c in picked.columns if c.startswith("ingest")])
    return json.loads(picked.to_json(orient="records"))


class _Server:
    """`trackflow serve-models` in its own process group, stopped on exit."""

    def __init__(self, root: str, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        trackflow = str(Path(sys.executable).with_name("trackflow"))  # the environment's console script
        cmd = [trackflow, "serve-models", "--port", str(self.port), "--root", root]
        self.process = subprocess.Popen(
            cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=root
        )

    def wait_ready(self, client: Any, timeout_s: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited ({self.process.returncode}): see {self.log}")
            try:
                answer = client.get(f"{self.url}/health", timeout=2.0)
                if answer.status_code == 200:
                    return answer.json()
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
        raise BenchError(f"the server was not up within {timeout_s:.0f} s: see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _timed(client: Any, url: str, row: Mapping[str, Any]) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        answer = client.post(url, json={"rows": [row]}, timeout=30.0)
        ok = answer.status_code == 200 and len(answer.json()["predictions"]) == 1
    except Exception:  # a refused or timed-out request counts as an error
        ok = False
    return time.perf_counter() - started, ok


def load_job(root: str, log: str, requests: int, clients: int, deadline_s: float) -> dict[str, Any]:
    """Child job: start the server, measure one client's one-row latency (with and without a genre), then
    `clients` clients sharing `requests` requests, stopping at `deadline_s`."""
    import httpx

    rows = request_rows(root, 200)
    without_genre = [{**row, "track_genre": None} for row in rows]
    server = _Server(root, Path(log))
    try:
        with httpx.Client() as client:
            health = server.wait_ready(client)
            url = f"{server.url}/predict"
            for row in rows[:WARMUP_REQUESTS]:
                _timed(client, url, row)
            single: dict[str, Any] = {}
            for label, pool in (("genre_given", rows), ("genre_absent", without_genre)):
                timings = [_timed(client, url, pool[i % len(pool)]) for i in range(requests // 2)]
                single[label] = {
                    **percentiles([t for t, ok in timings if ok]),
                    "errors": sum(not ok for _, ok in timings),
                }
        counter = iter(range(requests))
        lock = threading.Lock()
        results: list[tuple[float, bool]] = []
        stop_at = time.monotonic() + deadline_s

        def client_loop() -> None:
            with httpx.Client() as client:
                while time.monotonic() < stop_at:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    outcome = _timed(client, url, rows[i % len(rows)])
                    with lock:
                        results.append(outcome)

        started = time.perf_counter()
        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        loaded = {
            **percentiles([t for t, ok in results if ok]),
            "clients": clients,
            "requests": requests,
            "answered": len(results),
            "errors": sum(not ok for _, ok in results),
            "unsent": requests - len(results),
            "wall_s": wall,
            "requests_per_s": len(results) / wall,
            "deadline_s": deadline_s,
        }
    finally:
        server.stop()
    return {
        "single": single,
        "load": loaded,
        "models": {name: entry["version"] for name, entry in health["models"].items()},
    }


def batch_job(root: str, rows: int, repeats: int) -> dict[str, Any]:
    """Child job: the champions' outputs for `rows` rows through the inference path and the path before
    it, alternately, `repeats` times each; the scoring gate's validation of the same rows."""
    import pandas as pd

    from bench.scoring import scoring_batch
    from components.inference import reference_outputs
    from components.schema import GENRE, ROW_NUMBER
    from components.scoring import task_outputs
    from components.validation import validate_tracks
    from trackflow.paths import ProjectPaths
    from trackflow.stages.common import params_for
    from trackflow.stages.scoring import load_champions, scoring_suite

    paths = ProjectPaths.at(root)
    params = params_for(paths)
    champions = load_champions(paths, params, ("popularity", "hit", "genre"))
    if not champions:
        raise BenchError(f"{root}: no champion registered")
    listings = pd.read_parquet(paths.interim_tracks)
    # The scoring bench's batch (unique track ids, so that the gate's duplicate checks pass), with the
    # genre of the same resampled rows on every other row: the genre-aware models and their fallbacks.
    batch = scoring_batch(listings, rows, SEED)
    genres = listings.sample(n=rows, replace=True, random_state=SEED)[GENRE].to_numpy()
    batch[GENRE] = np.where(np.arange(rows) % 2 == 0, genres, None)
    batch[ROW_NUMBER] = np.arange(rows) + 2  # line numbers, as the gate maps failures back to rows
    models = {task: champion.task_model for task, champion in champions.items()}
    fast_s, before_s = [], []
    task_outputs(batch, champions)  # first-call set-up (lookups, allocations, thread pools) is not throughput
    for _ in range(repeats):
        started = time.perf_counter()
        fast = task_outputs(batch, champions)
        fast_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        before = {task: reference_outputs(model, batch) for task, model in models.items()}
        before_s.append(time.perf_counter() - started)
    largest_difference = max(float(np.max(np.abs(fast[t] - before[t]))) for t in fast)
    suite = scoring_suite(paths)
    gate = params.validation.model_copy(update={"min_rows": params.score.min_rows})
    gate_s = []
    for _ in range(repeats):
        started = time.perf_counter()
        validate_tracks(batch, suite, gate, columns_in_file=list(batch.columns))
        gate_s.append(time.perf_counter() - started)
    fast_median, before_median, gate_median = (float(np.median(v)) for v in (fast_s, before_s, gate_s))
    return {
        "rows": rows,
        "repeats": repeats,
        "inference_rows_per_s": spread([rows / s for s in fast_s]),
        "before_rows_per_s": spread([rows / s for s in before_s]),
        "speedup": before_median / fast_median,
        "gate_rows_per_s": spread([rows / s for s in gate_s]),
        "gate_share": gate_median / (gate_median + fast_median),
        "largest_difference": largest_difference,
        "models": {task: champion.version for task, champion in champions.items()},
    }


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.flow_root
    if not (root / "data" / "interim" / "tracks.parquet").is_file():
        raise BenchError(f"{root} has no trained project: run the training section first")
    requests, clients = (200, 2) if ctx.quick else (2000, 4)
    say(f"serving: {requests:,} one-row requests per phase, then {clients} clients ...")
    load = run_job(
        ctx,
        "serving-load",
        "bench.serving:load_job",
        {
            "root": str(root),
            "log": str(ctx.logs / "serving-server.log"),
            "requests": requests,
            "clients": clients,
            "deadline_s": 120.0,
        },
        root,
    ).as_dict()
    rows = QUICK_BATCH_ROWS if ctx.quick else BATCH_ROWS
    say(f"serving: batch of {rows:,} rows through the inference path and the one before ...")
    batch = run_job(
        ctx,
        "serving-batch",
        "bench.serving:batch_job",
        {"root": str(root), "rows": rows, "repeats": ctx.repeats},
        root,
    ).as_dict()
    single = load["single"]["genre_given"]
    say(
        f"serving: one row p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms; batch "
        f"{batch['inference_rows_per_s']['median']:,.0f} rows/s, {batch['speedup']:.2f}x the path before"
    )
    return {"load": load, "batch": batch}


# --- its rows of the summary and its section of BENCHMARKS.md (bench/report.py composes them) ---
def targets(data: Mapping[str, Any] | None) -> list[list[str]]:
    if data is None:
        return [["Serving targets", "not measured", "n/a"]]
    single, batch = data["load"]["single"]["genre_given"], data["batch"]
    throughput = batch["inference_rows_per_s"]["median"]
    met = "**yes**" if single["p50_ms"] <= P50_TARGET_MS and single["p99_ms"] <= P99_TARGET_MS else "no"
    return [
        [
            f"One row through `/predict` (three models): p50 ≤ {P50_TARGET_MS:.0f} ms, p99 ≤ "
            f"{P99_TARGET_MS:.0f} ms",
            f"p50 {_ms(single['p50_ms'])}, p99 {_ms(single['p99_ms'])}",
            met,
        ],
        [
            f"Inference path (preprocessing and the three models) ≥ {ROWS_PER_S_TARGET:,} rows/s",
            f"{rate(throughput)} rows/s, {batch['speedup']:.2f}x the path before; the gate "
            f"{batch['gate_share']:.0%} of a batch's time",
            "**yes**" if throughput >= ROWS_PER_S_TARGET else "no",
        ],
    ]


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def render(data: Mapping[str, Any]) -> list[str]:
    load, batch = data["load"], data["batch"]
    rows = []
    for label, entry in (
        ("one client, genre given", load["single"]["genre_given"]),
        ("one client, no genre", load["single"]["genre_absent"]),
        (f"{load['load']['clients']} clients", load["load"]),
    ):
        rows.append(
            [
                label,
                f"{entry['n']:,}",
                _ms(entry["p50_ms"]),
                _ms(entry["p95_ms"]),
                _ms(entry["p99_ms"]),
                str(entry["errors"]),
            ]
        )
    loaded = load["load"]
    models = ", ".join(f"{name} v{version}" for name, version in load["models"].items())
    return [
        *table(["one-row `/predict`", "answered", "p50", "p95", "p99", "errors"], rows),
        "",
        f"`trackflow serve-models` on 127.0.0.1 with {models}; popularity, hit and genre (top-k) answered "
        "in every request, each logged to the prediction log. Latency is the client's, from sending the "
        f"request to the parsed answer, after {WARMUP_REQUESTS} warm-up requests; clients and server share "
        f"the cores. Under load: {loaded['requests']:,} requests shared by {loaded['clients']} clients "
        f"with a {loaded['deadline_s']:.0f} s deadline: {loaded['answered']:,} answered in "
        f"{loaded['wall_s']:.1f} s ({loaded['requests_per_s']:.0f} requests/s), "
        f"{loaded['unsent']} left unsent at the deadline.",
        "",
        *table(
            [
                "batch rows",
                "inference path rows/s",
                "path before rows/s",
                "speed-up",
                "gate rows/s",
                "gate's share",
            ],
            [
                [
                    f"{batch['rows']:,}",
                    rate(batch["inference_rows_per_s"]["median"]),
                    rate(batch["before_rows_per_s"]["median"]),
                    f"**{batch['speedup']:.2f}x**",
                    rate(batch["gate_rows_per_s"]["median"]),
                    f"{batch['gate_share']:.0%}",
                ]
            ],
        ),
        "",
        "The three champions' outputs for the same rows (the ingested tracks resampled with a fixed seed, "
        "every other row without its genre), medians of "
        f"{batch['repeats']} alternating runs in one process: the inference path (components/inference.py) "
        "against the path before it (`reference_outputs`: a feature frame per blend member, each library's "
        f"public predict). Their largest difference: {batch['largest_difference']:.1e}. The gate is the "
        "scoring validation (GX) of the same rows; its share is of gate plus inference.",
    ]
