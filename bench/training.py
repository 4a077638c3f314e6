"""The training DAG on the whole dataset: once as the Prefect flow (`flows.training.training`, what
`make run` runs) with the default budget, for its wall time per stage, memory and holdout metrics; then,
for the orchestration overhead, the same DAG with a light tuning and training budget, run both as the flow
and as the same stage functions called directly in one Python process, in the same order and with the same
2-thread pool for the tuning of one task's families.

The overhead is what Prefect adds around the stage calls, which does not grow with the work inside them: a
light budget keeps every stage and family of the DAG and two of its tasks (all 114,000 rows in the data
stages and the holdouts), and makes that fixed cost a larger share, so its ratio errs high. It also spares
the suite a second full training run (about 10 minutes on 2 cores), which pays for repeats: a single light
pair on a shared 2-core VM measured 1.32 in one run and 0.99 in the next, host noise larger than the
overhead. The pairs run in the order flow, direct, direct, flow, so a drift in host speed weighs on both
runners alike, and the ratio is the median of the pairs' ratios.

Each run is one child process in a fresh copy of the project (no Optuna study to resume, an empty MLflow
store). Wall time per stage comes from the stage functions themselves, timed the same way in both modes.

Over 400 lines with its section of BENCHMARKS.md (render), which reads the same runs and pairs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.format import megabytes, number, ranged, seconds, table
from bench.harness import Context, run_job, say, spread
from bench.project import copy_root, make_base

# The flow's task runner: ThreadPoolTaskRunner(max_workers=2); the direct run uses the same pool size.
TUNE_THREADS = 2
DATA_STAGES = ("ingest", "validate", "featurize", "split")
TASK_STAGES = ("tune", "train", "evaluate", "register")
# The overhead runs' budget: the default profile shrunk; every task, family and stage stays.
LIGHT_PROFILE = {
    "n_trials": 1,
    "timeout_s": 600,
    "cv_folds": 2,
    "max_tune_rows": 1500,
    "max_train_rows": 2000,
}
# The overhead runs' tasks: two, so that the per-task loop is there; genre, whose light run costs as much as
# the other two together, is in the full run only (four light runs must fit the suite's 30 minutes).
OVERHEAD_TASKS = ("popularity", "hit")
# Runner order of the overhead runs: each adjacent flow/direct couple is a pair (ABBA).
OVERHEAD_ORDER = ("flow", "direct", "direct", "flow")


def direct_training(root: str) -> dict[str, Any]:
    """The training pipeline without Prefect: trackflow.runner with the direct backend runs the same
    definition as the flow, in the same order, with the same MLflow parent run and a tuning pool of the
    flow's size, in one Python process."""
    from trackflow.paths import ProjectPaths
    from trackflow.runner import DirectBackend, load_run_params, run_training

    paths = ProjectPaths.at(root)
    return run_training(paths, load_run_params(paths), DirectBackend(TUNE_THREADS), runner="direct")


def warm_up_prefect() -> float:
    """Seconds to start Prefect's ephemeral API and run an empty flow: paid once per process."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> int:
        return 1

    started = time.perf_counter()
    warm_up()
    return time.perf_counter() - started


def train_job(root: str, mode: str) -> dict[str, Any]:
    """Child job: one training run (`flow` or `direct`) in `root`; returns timings, outcome and metrics."""
    from components.io import read_json

    if mode not in ("flow", "direct"):
        raise ValueError(f"mode must be flow or direct, not {mode!r}")
    prefect_start_s = None
    if mode == "flow":
        prefect_start_s = warm_up_prefect()
        from flows.training import training

        runner = functools.partial(training, root=root)
    else:
        runner = functools.partial(direct_training, root)
    started = time.perf_counter()
    result = runner()
    total = time.perf_counter() - started
    # Both runners time their stages themselves (trackflow.runner), from the pipeline run's start.
    stages = result["timings"]
    root_path = Path(root)
    tasks = list(result["tasks"])
    devices = sorted(
        {
            read_json(p).get("device", "?")
            for task in tasks
            for p in (root_path / "data" / "tuning" / task).glob("*.json")
            if not p.name.endswith(".failed.json")
        }
    )
    return {
        "mode": mode,
        "total_s": total,
        "prefect_start_s": prefect_start_s,
        "stages": stages,
        "rows": result["ingest"]["rows"],
        "rows_valid": result["validate"]["rows_valid"],
        "tracks": result["featurize"]["tracks_out"],
        "devices": devices,
        "gpu": _gpu_name() if "cuda" in devices else None,
        "tasks": {
            task: {
                "selected": outcome["evaluate"]["selected"],
                "failed": outcome["failed"],
                "version": outcome["register"]["version"],
                "aliases": outcome["register"]["aliases"],
                "gate_metric": outcome["register"]["gate_metric"],
                "challenger_score": outcome["register"]["challenger_score"],
            }
            for task, outcome in result["tasks"].items()
        },
        # The holdout metrics this run wrote: the quality section reads them from here.
        "metrics": {task: read_json(root_path / "metrics" / f"{task}.json") for task in tasks},
        "params": training_params(root_path),
    }


def training_params(root: Path) -> dict[str, Any]:
    """The training budget the run used, for the report."""
    from trackflow.config import load_params

    params = load_params(root / "params.yaml")
    return {
        "profile": params.train.profile,
        "budget": params.train.tuning.model_dump(mode="json"),
        "families": list(params.train.families),
        "tasks": list(params.train.tasks),
        "device": params.train.device,
    }


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


# --- the section (parent side) ---
def stage_table(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wall seconds per stage, in DAG order: the data stages, then per task its tuning (the families run in
    parallel inside it), train, evaluate and register. Records of parts (one family's study) are left out."""
    stages = [s for s in stages if s.get("part") is None]
    table: list[dict[str, Any]] = []
    for name in DATA_STAGES:
        calls = [s for s in stages if s["stage"] == name]
        if calls:
            table.append({"stage": name, "seconds": sum(s["end_s"] - s["start_s"] for s in calls)})
    tasks = list(dict.fromkeys(s["task"] for s in sorted(stages, key=lambda s: s["start_s"]) if s["task"]))
    for task in tasks:
        for name in TASK_STAGES:
            calls = [s for s in stages if s["stage"] == name and s["task"] == task]
            if calls:
                wall = max(s["end_s"] for s in calls) - min(s["start_s"] for s in calls)
                table.append({"stage": f"{name}@{task}", "seconds": wall})
    return table


def prefect_init_job() -> dict[str, Any]:
    """Child job: the first Prefect start in a new PREFECT_HOME (its database is created); measured apart so
    that the flow runs measure the start a user sees every time after the first."""
    return {"first_start_s": warm_up_prefect()}


def light_params(root: Path) -> list[str]:
    """The overhead runs' budget (LIGHT_PROFILE, for the copy's active profile) and tasks (OVERHEAD_TASKS
    among the project's own; all of them if it has none of those) in the copy's params.yaml."""
    path = root / "params.yaml"
    params: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    profile = params["train"].get("profile", "default")
    params["train"]["profiles"][profile] = dict(LIGHT_PROFILE)
    tasks = [t for t in params["train"]["tasks"] if t in OVERHEAD_TASKS] or params["train"]["tasks"]
    params["train"]["tasks"] = tasks
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return tasks


def _train(ctx: Context, base: Path, root: Path, mode: str, label: str, light: bool) -> dict[str, Any]:
    copy_root(base, root)
    if light:
        light_params(root)
    say(f"training ({label}): the whole DAG in {root} ...")
    job = run_job(
        ctx, f"training-{label}", "bench.training:train_job", {"root": str(root), "mode": mode}, root
    )
    data = job.as_dict()
    data["stage_seconds"] = stage_table(data["stages"])
    slowest = max(data["stage_seconds"], key=lambda s: s["seconds"])
    say(
        f"training ({label}): {data['total_s']:.1f} s, peak {data['peak_rss_mb']:.0f} MB, slowest stage "
        f"{slowest['stage']} {slowest['seconds']:.1f} s"
    )
    return data


def overhead_root(ctx: Context, mode: str, index: int) -> Path:
    """The project copy of the index-th overhead run of `mode`: the first ones are the Context's roots (the
    DVC section reuses the first direct run)."""
    first = ctx.overhead_flow_root if mode == "flow" else ctx.direct_root
    return first if index == 0 else first.with_name(f"{first.name}-{index + 1}")


def overhead_pairs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent (flow, direct) couples of runs in OVERHEAD_ORDER, as pairs with their ratios."""
    pairs = []
    for first, second in zip(runs[::2], runs[1::2], strict=True):
        flow, direct = (first, second) if first["mode"] == "flow" else (second, first)
        if (flow["mode"], direct["mode"]) != ("flow", "direct"):
            raise ValueError(
                f"an overhead pair needs one flow and one direct run, got {first['mode']}, {second['mode']}"
            )
        start = flow["prefect_start_s"] or 0.0
        pairs.append(
            {
                "flow_s": flow["total_s"],
                "direct_s": direct["total_s"],
                "prefect_start_s": flow["prefect_start_s"],
                "ratio": flow["total_s"] / direct["total_s"],
                "ratio_with_start": (flow["total_s"] + start) / direct["total_s"],
            }
        )
    return pairs


def run(ctx: Context) -> dict[str, Any]:
    base = make_base(ctx)
    first_start = run_job(ctx, "prefect-init", "bench.training:prefect_init_job", {}, base).payload
    say(f"Prefect's first start (new database): {first_start['first_start_s']:.1f} s")
    flow = _train(ctx, base, ctx.flow_root, "flow", "flow", light=False)
    runs: list[dict[str, Any]] = []
    for mode in OVERHEAD_ORDER:
        index = sum(r["mode"] == mode for r in runs)
        root = overhead_root(ctx, mode, index)
        runs.append(_train(ctx, base, root, mode, f"{mode} {index + 1}, light budget", light=True))
    pairs = overhead_pairs(runs)
    ratios = spread([p["ratio"] for p in pairs])
    with_start = spread([p["ratio_with_start"] for p in pairs])
    say(
        f"orchestration overhead: flow / direct = {ratios['median']:.3f} (median of {ratios['n']} pairs, "
        f"{ratios['min']:.3f} - {ratios['max']:.3f}; {with_start['median']:.3f} with Prefect start-up)"
    )
    first_of = {mode: next(r for r in runs if r["mode"] == mode) for mode in ("flow", "direct")}
    return {
        "runs": {"flow": flow},
        # The first run of each runner: the quality section compares their metrics; DVC reuses the direct one.
        "overhead_runs": first_of,
        "overhead_all_runs": runs,
        "overhead_order": list(OVERHEAD_ORDER),
        "overhead_pairs": pairs,
        "light_budget": dict(LIGHT_PROFILE),
        "overhead_ratio": ratios["median"],
        "overhead_ratio_spread": ratios,
        "overhead_ratio_with_start": with_start["median"],
        "tune_threads": TUNE_THREADS,
        "prefect_first_start_s": first_start["first_start_s"],
        "roots": {
            "flow": str(ctx.flow_root),
            "overhead_flow": str(ctx.overhead_flow_root),
            "direct": str(ctx.direct_root),
        },
    }


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def overhead(data: Mapping[str, Any], pair: Mapping[str, Any], light: Mapping[str, Any] | None) -> list[str]:
    """The flow-vs-direct runs: per-stage medians over the runs of each runner, the pairs' ratios."""
    runs = data.get("overhead_all_runs") or [pair["flow"], pair["direct"]]
    by_mode = {mode: [r for r in runs if r["mode"] == mode] for mode in ("flow", "direct")}
    order = data.get("overhead_order") or ["flow", "direct"]
    repeated = len(runs) > 2
    # Results written before the overhead runs carried their own tasks have none recorded.
    light_tasks = by_mode["flow"][0].get("params", {}).get("tasks")
    lines = [
        (
            f"The same DAG with a light budget ({', '.join(f'{k} {v}' for k, v in light.items())}; "
            + (f"tasks {', '.join(light_tasks)}, " if light_tasks else "")
            + "every family and stage, all rows in the data stages and the holdouts), as the flow and as "
            "direct calls, each run in a fresh copy. What Prefect adds around the stage calls does not grow "
            "with the work inside them, so on a lighter run it is a larger share: this ratio errs high."
            if light
            else "The same DAG and budget as above, once as the flow and once as direct calls, each in a "
            "fresh copy."
        )
        + " Both run the one pipeline definition (trackflow/pipeline.py) through trackflow/runner.py: the "
        "direct backend calls the same stage functions in the same order in one Python process, tuning "
        f"one task's families on a {data['tune_threads']}-thread pool like the flow's "
        f"`ThreadPoolTaskRunner(max_workers={data['tune_threads']})`; each runner times its own stages. "
        + (
            f"Runs in the order {', '.join(order)}: each adjacent flow/direct couple is a pair, so a drift "
            "in the host's speed weighs on both runners alike. Stage times are medians over each runner's "
            "runs."
            if repeated
            else "Single measurements."
        ),
        "",
    ]

    def stage_median(mode: str, stage: str) -> float | None:
        values = [s["seconds"] for r in by_mode[mode] for s in r["stage_seconds"] if s["stage"] == stage]
        return spread(values)["median"] if values else None

    def over_runs(mode: str, key: str, fmt: Callable[[float], str] = seconds) -> str:
        values = [r[key] for r in by_mode[mode] if r.get(key) is not None]
        return ranged(spread(values), fmt) if values else "n/a"

    rows = [
        [
            f"`{s['stage']}`",
            seconds(stage_median("flow", s["stage"])),
            seconds(stage_median("direct", s["stage"])),
        ]
        for s in by_mode["flow"][0]["stage_seconds"]
    ]
    rows.append(["**total**", f"**{over_runs('flow', 'total_s')}**", f"**{over_runs('direct', 'total_s')}**"])
    rows.append(
        [
            "Prefect start-up in the run's process (not in the total)",
            over_runs("flow", "prefect_start_s"),
            "none",
        ]
    )
    rows.append(
        [
            "peak memory (largest process)",
            over_runs("flow", "peak_rss_mb", megabytes),
            over_runs("direct", "peak_rss_mb", megabytes),
        ]
    )
    rows.append(
        ["CPU time (all processes)", over_runs("flow", "process_cpu_s"), over_runs("direct", "process_cpu_s")]
    )
    lines += table(["stage", "Prefect flow", "direct calls"], rows)
    pairs = data.get("overhead_pairs")
    if pairs:
        lines += [
            "",
            *table(
                ["pair", "flow total", "direct total", "flow / direct", "counting Prefect's start-up"],
                [
                    [
                        str(i + 1),
                        seconds(p["flow_s"]),
                        seconds(p["direct_s"]),
                        f"{p['ratio']:.3f}",
                        f"{p['ratio_with_start']:.3f}",
                    ]
                    for i, p in enumerate(pairs)
                ],
            ),
        ]
        ratios = data["overhead_ratio_spread"]
        summary = (
            f"Orchestration overhead (flow total / direct total, median of {ratios['n']} pairs): "
            f"**{ratio_text(ratios)}**; {data['overhead_ratio_with_start']:.3f} counting the flow's Prefect "
            "start-up."
        )
    else:
        summary = (
            f"Orchestration overhead (flow total / direct total): **{data['overhead_ratio']:.3f}**; "
            f"{data['overhead_ratio_with_start']:.3f} counting the flow's Prefect start-up."
        )
    return [*lines, "", summary, ""]


def ratio_text(ratios: Mapping[str, Any]) -> str:
    """'median [min - max]' of ratios; a single one alone."""
    if ratios["n"] == 1:
        return f"{ratios['median']:.3f}"
    return f"{ratios['median']:.3f} [{ratios['min']:.3f} - {ratios['max']:.3f}]"


def render(data: Mapping[str, Any]) -> list[str]:
    flow = data["runs"]["flow"]
    pair = data.get("overhead_runs") or data["runs"]  # results written before the light overhead pair
    light = data.get("light_budget")
    budget = flow.get("params", {})
    tuning = budget.get("budget", {})
    lines = [
        f"{flow['rows']:,} rows in, {flow['rows_valid']:,} validated, {flow['tracks']:,} tracks; tasks "
        f"{', '.join(budget.get('tasks', []))}; families {', '.join(budget.get('families', []))}; profile "
        f"`{budget.get('profile')}` ({', '.join(f'{k} {v}' for k, v in tuning.items())}); device "
        f"{', '.join(flow['devices'])}{' (' + flow['gpu'] + ')' if flow.get('gpu') else ''}.",
        "",
        "The Prefect flow ran once, in a fresh copy of the project (no study to resume, an empty MLflow "
        "store): a run takes about as long as `make run`, so these are single measurements. A stage's time "
        "is the pipeline runner's clock around it (trackflow/runner.py; tune: its families side by side).",
        "",
    ]
    rows = [[f"`{s['stage']}`", seconds(s["seconds"])] for s in flow["stage_seconds"]]
    rows.append(["**total**", f"**{seconds(flow['total_s'])}**"])
    rows.append(
        ["Prefect start-up in the run's process (not in the total)", seconds(flow["prefect_start_s"])]
    )
    first = data.get("prefect_first_start_s")
    rows.append(["Prefect's first start on a machine (creates its database)", seconds(first)])
    rows.append(["peak memory (largest process)", megabytes(flow["peak_rss_mb"])])
    rows.append(["CPU time (all processes)", seconds(flow["process_cpu_s"])])
    lines += table(["stage", "Prefect flow"], rows)
    lines += ["", "### Orchestration overhead", "", *overhead(data, pair, light)]
    outcome = [
        [
            task,
            f"`{t['selected']}`",
            f"{t['gate_metric']} {number(t['challenger_score'])}",
            f"v{t['version']} {', '.join(t['aliases'])}",
            ", ".join(t["failed"]) or "none",
        ]
        for task, t in flow["tasks"].items()
    ]
    lines += table(
        ["task (flow run)", "selected", "holdout gate metric", "registered", "failed families"], outcome
    )
    return lines
