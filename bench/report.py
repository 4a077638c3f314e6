"""BENCHMARKS.md from the results files: the summary of targets, then each section as its own module renders
it (`render(data)` of bench/<section>.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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
from bench.format import ranged, seconds, steal_note, table, yes_no
from bench.training import ratio_text

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
    "serving": "Serving",
    "validation": "Validation",
    "drift": "Drift report",
    "genre-input": "Popularity and hit without a given genre",
    "audio": "Audio extraction",
    "quality": "Quality",
}


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


def _measured_line(entry: Mapping[str, Any]) -> str:
    steal = steal_note(entry.get("data", {}).get("cpu_steal_share"))
    return (
        f"_Measured {entry['measured_at']} on commit "
        f"`{entry['commit']}`{' in --quick mode' if entry.get('quick') else ''}, section wall time "
        f"{seconds(entry['seconds'])}{'; ' + steal if steal else ''}._"
    )


def targets(results: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    trained = _ok(results, "training")
    if trained:
        ratio = trained["overhead_ratio"]
        spread_of = trained.get("overhead_ratio_spread")
        measured = (
            f"{ratio_text(spread_of)} (median of {spread_of['n']} pairs)" if spread_of else f"{ratio:.3f}"
        )
        rows.append(
            [
                f"Orchestration overhead: Prefect flow / direct calls < {OVERHEAD_TARGET:.2f}",
                f"{measured}; {trained['overhead_ratio_with_start']:.3f} counting Prefect's start-up",
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
    rows += serving.targets(_ok(results, "serving"))
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
    trained = _ok(results, "training")
    if not trained:
        return None
    flow = trained["runs"]["flow"]
    slowest = max(flow["stage_seconds"], key=lambda s: s["seconds"])
    name, value = slowest["stage"], slowest["seconds"]
    return (
        f"The slowest stage is **`{name}`**: {seconds(value)} of the flow's {seconds(flow['total_s'])} "
        f"({100 * value / flow['total_s']:.0f}%)."
    )


RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "environment": environment.render,
    "training": training.render,
    "dvc": repro.render,
    "scoring": scoring.render,
    "serving": serving.render,
    "validation": validation.render,
    "drift": drift.render,
    "genre-input": genre_input.render,
    "audio": audio.render,
    "quality": quality.render,
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
