"""BENCHMARKS.md from the results files: every number in it is read from results/<section>.json, written by
this suite's own measurements (the published results of the quality section are citations from
bench/published.yaml, and are labelled as such)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import spread

# Targets of the issue; "a few seconds" is read as at most this many.
OVERHEAD_TARGET = 1.10
NOOP_TARGET_S = 10.0
BUDGET_TARGET_S = 30 * 60
BUDGET_CORES = 2
SECTION_TITLES = {
    "environment": "Environment",
    "training": "Training DAG",
    "dvc": "DVC",
    "scoring": "Batch scoring",
    "validation": "Validation",
    "drift": "Drift report",
    "audio": "Audio extraction",
    "quality": "Quality",
}
QUALITY_METRICS = {
    "popularity": ("rmse", "mae", "r2", "top_decile_recall"),
    "genre": ("top1_set_accuracy", "top3_set_accuracy", "macro_f1"),
    "hit": ("roc_auc", "pr_auc", "log_loss", "recall_at_precision"),
}
# Published metric -> (ours, how to convert ours to the published unit, note).
PUBLISHED_TO_OURS: dict[str, tuple[str, Callable[[float], float], str]] = {
    "rmse": ("rmse", lambda v: v, ""),
    "mae": ("mae", lambda v: v, ""),
    "r2": ("r2", lambda v: v, ""),
    "mse": ("rmse", lambda v: v * v, "ours: RMSE²"),
    "top1_accuracy": ("top1_set_accuracy", lambda v: 100 * v, "ours: top-1 in the track's genre set, %"),
    "top3_accuracy": ("top3_set_accuracy", lambda v: 100 * v, "ours: top-3 meets the track's genre set, %"),
}


# --- formatting ---
def seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value >= 120:
        minutes, rest = divmod(value, 60)
        return f"{int(minutes)} min {rest:04.1f} s"
    if value >= 10:
        return f"{value:.1f} s"
    return f"{value:.2f} s"


def megabytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ranged(spread: Mapping[str, Any], fmt: Callable[[float], str] = seconds) -> str:
    """'median [min - max]' of repeated runs; one run says so."""
    if spread["n"] == 1:
        return f"{fmt(spread['median'])} (1 run)"
    return f"{fmt(spread['median'])} [{fmt(spread['min'])} - {fmt(spread['max'])}]"


def rate(value: float) -> str:
    return f"{value:,.0f}"


def yes_no(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**no**")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _ok(results: Mapping[str, Any], section: str) -> dict[str, Any] | None:
    entry = results.get(section)
    return entry["data"] if entry and entry["status"] == "ok" else None


def _not_measured(results: Mapping[str, Any], section: str) -> list[str]:
    entry = results.get(section)
    if entry is None:
        return [
            f"_Not measured yet: run `make bench` (this section alone: `python -m bench --only {section}`)._"
        ]
    if entry["status"] == "skipped":
        return [f"_Skipped: {entry['data'].get('reason', 'no reason recorded')}_"]
    error = str(entry["data"].get("error", "no message recorded")).strip()
    return ["_Failed: the section did not produce numbers._", "", "```text", error[-3000:], "```"]


def steal_note(share: float | None) -> str:
    """How much CPU the hypervisor took (empty when unknown): wall times are only comparable without it."""
    return "" if share is None else f"CPU steal {share:.0%}"


def _measured_line(entry: Mapping[str, Any]) -> str:
    steal = steal_note(entry.get("data", {}).get("cpu_steal_share"))
    return (
        f"_Measured {entry['measured_at']} on commit "
        f"`{entry['commit']}`{' in --quick mode' if entry.get('quick') else ''}, section wall time "
        f"{seconds(entry['seconds'])}{'; ' + steal if steal else ''}._"
    )


# --- summary ---
def targets(results: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    training = _ok(results, "training")
    if training:
        ratio = training["overhead_ratio"]
        spread_of = training.get("overhead_ratio_spread")
        measured = (
            f"{ratio_text(spread_of)} (median of {spread_of['n']} pairs)" if spread_of else f"{ratio:.3f}"
        )
        rows.append(
            [
                f"Orchestration overhead: Prefect flow / direct calls < {OVERHEAD_TARGET:.2f}",
                f"{measured}; {training['overhead_ratio_with_start']:.3f} counting Prefect's start-up",
                yes_no(ratio < OVERHEAD_TARGET),
            ]
        )
    else:
        rows.append([f"Orchestration overhead < {OVERHEAD_TARGET:.2f}", "not measured", "n/a"])
    dvc = _ok(results, "dvc")
    if dvc:
        noop = dvc["noop"]
        rows.append(
            [
                f"`dvc repro` with nothing changed: a few seconds (≤ {NOOP_TARGET_S:.0f} s)",
                ranged(noop),
                yes_no(
                    noop["median"] <= NOOP_TARGET_S
                    and all(r["up_to_date"] and not r["ran"] for r in noop["runs"])
                ),
            ]
        )
        param = dvc["param"]
        rows.append(
            [
                f"`dvc repro` after `{param['name']}` {param['old']} → {param['new']}: only affected stages "
                "rerun",
                f"{len(param['ran'])} of {param['stages_total']} stages in {seconds(param['wall_s'])}: "
                + ", ".join(f"`{s}`" for s in param["ran"]),
                yes_no(param["only_affected"]),
            ]
        )
    else:
        rows.append(["`dvc repro` targets", "not measured", "n/a"])
    run = results.get("run")
    if run and run.get("quick"):
        rows.append(
            ["`make bench` in under 30 min on 2 cores", "--quick run: not a measurement of it", "n/a"]
        )
    elif run and run["data"].get("complete"):
        total, cores = run["data"]["total_s"], run["data"]["cores"]
        on_budget_machine = cores <= BUDGET_CORES
        rows.append(
            [
                f"`make bench` from scratch in under 30 min on {BUDGET_CORES} cores",
                f"{seconds(total)} on {cores} cores"
                + ("" if on_budget_machine else " (not a 2-core machine)")
                + (
                    f" ({steal_note(run['data']['cpu_steal_share'])}: the hypervisor's share of the CPU)"
                    if run["data"].get("cpu_steal_share")
                    else ""
                ),
                yes_no(total < BUDGET_TARGET_S) if on_budget_machine else "n/a",
            ]
        )
    else:
        rows.append(["`make bench` in under 30 min on 2 cores", "not a complete run of every section", "n/a"])
    return rows


def slowest_stage(results: Mapping[str, Any]) -> str | None:
    training = _ok(results, "training")
    if not training:
        return None
    flow = training["runs"]["flow"]
    slowest = max(flow["stage_seconds"], key=lambda s: s["seconds"])
    name, value = slowest["stage"], slowest["seconds"]
    return (
        f"The slowest stage is **`{name}`**: {seconds(value)} of the flow's {seconds(flow['total_s'])} "
        f"({100 * value / flow['total_s']:.0f}%)."
    )


# --- sections ---
def environment(data: Mapping[str, Any]) -> list[str]:
    libraries = ", ".join(f"{k} {v}" for k, v in data["libraries"].items() if v)
    memory = data["memory_gb"]
    return [
        f"- CPU: {data['cpu']}; {data['cores_usable']} usable cores ({data['cores_logical']} logical)",
        f"- Memory: {memory:.1f} GB" if memory else "- Memory: unknown",
        f"- OS: {data['os']}; Python {data['python']}; torch threads {data['torch_threads']}",
        f"- GPU: {', '.join(data['gpus']) if data['gpus'] else 'none'} (whether training used one: see the "
        "training section)",
        f"- Libraries: {libraries}",
    ]


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


def training(data: Mapping[str, Any]) -> list[str]:
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


def dvc(data: Mapping[str, Any]) -> list[str]:
    noop, param = data["noop"], data["param"]
    return [
        f"`dvc repro {' '.join(data['targets'])}`: the training chain of `dvc.yaml` ({param['stages_total']} "
        "stages; other pipelines in it, such as discovery, are not part of these figures), in a git "
        "repository holding a copy of the project after the direct training run (light budget: see the "
        "overhead runs), which recorded its own stages in `dvc.lock` as every run of the pipeline does; "
        f"`dvc commit --force` over them took {seconds(data['commit_s'])}.",
        "",
        *table(
            ["run", "wall time", "peak memory", "stages run"],
            [
                [
                    f"`dvc repro`, nothing changed (x{noop['n']})",
                    ranged(noop),
                    megabytes(max(r["peak_rss_mb"] for r in noop["runs"])),
                    ", ".join(sorted({s for r in noop["runs"] for s in r["ran"]})) or "none (up to date)",
                ],
                [
                    f"`dvc repro` after `{param['name']}` {param['old']} → {param['new']} (1 run)",
                    seconds(param["wall_s"]),
                    megabytes(param["peak_rss_mb"]),
                    ", ".join(f"`{s}`" for s in param["ran"]),
                ],
            ],
        ),
        "",
        f"`dvc status` flagged {', '.join(f'`{s}`' for s in param['changed_per_dvc_status']) or 'nothing'}; "
        f"with everything downstream of them, {len(param['allowed'])} of {param['stages_total']} stages may "
        f"rerun. Only those reran: {yes_no(param['only_affected'])}.",
    ]


def scoring(data: Mapping[str, Any]) -> list[str]:
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
        "the same rows already in memory, chained as the flow chains them (the genre answer is the other "
        f"models' genre input); loading the models ({seconds(first['predict']['load_models_s'])}) and "
        f"reading the file ({seconds(first['predict']['read_s'])}) are not in its time. Ratio = flow rows/s "
        "÷ predict rows/s. `flow rows/s, models loaded` is the scoring stage's own clock, which starts "
        "after loading the champions.",
        "",
        f"The batches are the {data['source_rows']:,} ingested rows without labels; the larger one a seeded "
        f"resample with replacement. Every row gets a unique, well-formed track id (`{data['id_prefix']}` + "
        "17 base-62 digits): the dataset lists a track once per genre, and without its genre such a batch "
        "is over the gate's limits for duplicate rows (5%) and repeated ids (35%). Nothing else is changed, "
        "and the track id is not a model input. Batches above 200,000 rows ran once.",
    ]


def validation(data: Mapping[str, Any]) -> list[str]:
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
                    "`trackflow.stages.validate` (files, HTML report, MLflow run)",
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


def drift(data: Mapping[str, Any]) -> list[str]:
    last = data["runs"][-1]
    return [
        f"`components.drift.drift_report`: {data['rows_current']:,} rows against {data['rows_reference']:,} "
        "(every ingested row as the reference, a seeded resample of as many as the batch), "
        f"{data['columns']} input columns, HTML included: **{ranged(data['wall_s'])}**, peak memory "
        f"{megabytes(data['peak_rss_mb'])}. Drift share {last['drift_share']:.2f} (an iid resample: none "
        f"expected), report {last['html_bytes'] / 1e6:.1f} MB. The monitor's prediction drift is a second "
        "report over 3 columns, not included.",
    ]


def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def audio(data: Mapping[str, Any]) -> list[str]:
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


def _metric_value(values: Mapping[str, Any], key: str) -> float | None:
    if key in values:
        return values[key]
    matches = [v for k, v in values.items() if k.startswith(key)]
    return matches[0] if matches else None


def _metric_label(values: Mapping[str, Any], key: str) -> str:
    return next((k for k in values if k.startswith(key)), key)


def quality(data: Mapping[str, Any]) -> list[str]:
    metrics = data["metrics"]
    lines = [
        f"From the flow run's `metrics/<task>.json` ({data['tracks']:,} tracks, holdouts untouched until "
        "evaluation). Same budget, two runners: the overhead pair's flow and direct runs wrote metrics that "
        "were "
        + (
            "identical."
            if all(data["same_in_direct_run"].values())
            else "different for "
            + ", ".join(t for t, same in data["same_in_direct_run"].items() if not same)
            + "."
        ),
        "The main holdout is grouped by primary artist (artists never seen in training); the second is "
        "grouped by track (the same artist may be on both sides, never the same track). `blend` is the mean "
        "of the best two families on cross-validation.",
        "",
    ]
    for task, task_metrics in metrics.items():
        keys = QUALITY_METRICS.get(task, ())
        selected = task_metrics["selected"]
        for protocol in ("artist", "track"):
            if protocol not in task_metrics:
                continue
            families = task_metrics[protocol]
            sample = next(iter(families.values()))
            header = ["family", *[_metric_label(sample, k) for k in keys], "n"]
            rows = []
            for family, values in families.items():
                name = f"**{family}** (selected)" if family == selected else family
                rows.append(
                    [name, *[number(_metric_value(values, k)) for k in keys], f"{values.get('n', 0):,}"]
                )
            label = "main" if protocol == task_metrics.get("main_protocol") else "comparison"
            lines += [f"**{task}**, holdout grouped by {protocol} ({label})", "", *table(header, rows), ""]
    lines += published(data)
    return lines


def _leak(flag: Any) -> str:
    return {True: "**yes**", False: "no", "likely": "**likely**"}.get(flag, str(flag))


def published(data: Mapping[str, Any]) -> list[str]:
    metrics = data["metrics"]
    rows = []
    for entry in data["published"]:
        task_metrics = metrics.get(entry["task"])
        theirs, ours = [], []
        for name, value in entry["metrics"].items():
            unit = "%" if entry.get("unit") == "percent" else ""
            theirs.append(f"{name} {value:g}{unit}")
            if (
                name in PUBLISHED_TO_OURS
                and task_metrics
                and entry.get("comparable_to") in ("artist", "track")
            ):
                key, convert, note = PUBLISHED_TO_OURS[name]
                selected = task_metrics["selected"]
                parts = []
                for protocol in ("track", "artist"):
                    value_ours = task_metrics.get(protocol, {}).get(selected, {}).get(key)
                    if value_ours is not None:
                        parts.append(f"{convert(value_ours):.4g}{unit} ({protocol})")
                ours.append(f"{name} " + " / ".join(parts) + (f"; {note}" if note else ""))
        rows.append(
            [
                entry["task"],
                f"[{entry['title']}]({entry['url']})",
                entry["model"],
                "; ".join(theirs),
                entry["protocol"],
                _leak(entry["leaks"])
                + (": " + "; ".join(entry["leak_reasons"]) if entry["leak_reasons"] else ""),
                "; ".join(ours) if ours else "not comparable",
            ]
        )
    return [
        "### Published results for this dataset",
        "",
        "Quoted from their sources (the only hand-typed numbers here; see `bench/published.yaml` for each "
        "quote). Ours: the selected model, track-grouped holdout first (closest to their setting, without "
        "the leak), then the main artist-grouped holdout. A random split over listing rows leaks: a track "
        "is listed once per genre it has, so its copies land on both sides.",
        "",
        *table(["task", "source", "model", "published", "protocol", "leaks", "trackflow (ours)"], rows),
    ]


RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "environment": environment,
    "training": training,
    "dvc": dvc,
    "scoring": scoring,
    "validation": validation,
    "drift": drift,
    "audio": audio,
    "quality": quality,
}


def render(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The whole BENCHMARKS.md from the results of each section (missing or failed ones say so)."""
    run = results.get("run", {}).get("data", {})
    quick = any(entry.get("quick") for entry in results.values())
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated file: do not edit. Regenerate with `make bench`. -->",
        "_Generated by `make bench` (`python -m bench`, the suite in `bench/`): every figure is measured by "
        "the suite on this code and this data; nothing is copied or typed in, except the published results "
        "of other projects, which are quoted with their sources. Regenerate with `make bench`; one section "
        "with `python -m bench --only SECTION`._",
        "",
    ]
    if quick:
        lines += [
            "> **--quick mode**: a small sample and tiny budgets, to develop the suite. These numbers say "
            "nothing about the product; run `make bench` for real ones.",
            "",
        ]
    if run:
        lines += [
            f"Run of {run.get('started_at', '?')}: sections {', '.join(run.get('sections', []))}; "
            f"{seconds(run.get('total_s'))} in all on {run.get('cores', '?')} cores"
            + (f" ({steal_note(run['cpu_steal_share'])})" if run.get("cpu_steal_share") is not None else "")
            + "; repeats "
            f"{run.get('repeats')}. A timing reads `median [min - max]` over the repeats; `1 run` marks a "
            "single measurement. On a virtual machine the hypervisor may give our CPUs' time to other guests "
            "(CPU steal, from /proc/stat, given per section): wall times measured under steal overstate what "
            "this code needs.",
            "",
        ]
    lines += ["## Summary", "", *table(["target", "measured", "met"], targets(results)), ""]
    slowest = slowest_stage(results)
    if slowest:
        lines += [slowest, ""]
    for section, title in SECTION_TITLES.items():
        lines += [f"## {title}", ""]
        data = _ok(results, section)
        if data is None:
            lines += [*_not_measured(results, section), ""]
            continue
        try:
            body = RENDERERS[section](data)
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            # Results written by another version of the suite: say so rather than fail the whole report.
            body = [f"_These results cannot be rendered ({type(exc).__name__}: {exc}); rerun the section._"]
        lines += [*body, "", _measured_line(results[section]), ""]
    lines += [
        "## How it is measured",
        "",
        "- Every measured piece of work runs in a fresh child process (`python -m bench.child`) in a "
        "temporary copy of the repository with its own data, MLflow store and Prefect home; the checkout's "
        "`data/`, `mlflow/` and `optuna/` are never touched.",
        "- Timings are taken inside the child around the measured call (imports and set-up excluded); peak "
        "memory is `ru_maxrss` from `wait4()`: the peak resident memory of the largest process of the "
        "child's tree; CPU time is user + system time of the tree.",
        "- The suite asserts nothing about time: it prints numbers and writes this file. Raw results: "
        "`bench/results/*.json`; child logs: `bench/results/logs/`.",
    ]
    return "\n".join(lines).rstrip() + "\n"
