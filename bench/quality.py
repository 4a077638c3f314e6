"""Quality: the holdout metrics of every model family for every task under both protocols, as the suite's
own training run wrote them (metrics/<task>.json, carried in results/training.json), next to published
results for this dataset (bench/published.yaml: citations, each checked against its quote)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.format import number, table
from bench.harness import BenchError, Context, read_results, say
from components.schema import PROTOCOLS

TASKS = ("popularity", "genre", "hit")
LEAK_VALUES = (True, False, "likely")
COMPARABLE = (*PROTOCOLS, "none")
REQUIRED = ("id", "task", "title", "url", "model", "quote", "metrics", "protocol", "leaks", "leak_reasons")


def _appears(value: float, quote: str) -> bool:
    """The number is written in the quote (as 15.0391, 96, 31.6 ...)."""
    forms = {str(value), f"{value:g}"}
    if float(value).is_integer():
        forms.add(str(int(value)))
    return any(form in quote for form in forms)


def load_published(path: Path) -> list[dict[str, Any]]:
    """The citations, validated: every field present, every number found in its quote."""
    if not path.is_file():
        raise BenchError(f"{path}: the published results file is missing")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BenchError(f"{path}: not valid YAML: {exc}") from exc
    entries = document.get("sources")
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{path}: expected a non-empty list under `sources:`")
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = entry.get("id", f"#{index}") if isinstance(entry, dict) else f"#{index}"
        if not isinstance(entry, dict):
            problems.append(f"{name}: not a mapping")
            continue
        missing = [key for key in REQUIRED if key not in entry]
        if missing:
            problems.append(f"{name}: missing {missing}")
            continue
        if name in seen:
            problems.append(f"{name}: duplicate id")
        seen.add(name)
        if entry["task"] not in TASKS:
            problems.append(f"{name}: task {entry['task']!r} is not one of {TASKS}")
        if not str(entry["url"]).startswith("https://"):
            problems.append(f"{name}: url must be an https address, got {entry['url']!r}")
        if entry["leaks"] not in LEAK_VALUES:
            problems.append(f"{name}: leaks must be true, false or likely, got {entry['leaks']!r}")
        reasons = entry["leak_reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            problems.append(f"{name}: leak_reasons must be a list of sentences (quote one with a colon)")
        if entry.get("comparable_to", "none") not in COMPARABLE:
            problems.append(f"{name}: comparable_to must be one of {COMPARABLE}")
        metrics = entry["metrics"]
        if not isinstance(metrics, dict) or not metrics:
            problems.append(f"{name}: metrics must be a non-empty mapping")
            continue
        for metric, value in metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                problems.append(f"{name}: metric {metric} is not a number ({value!r})")
            elif not _appears(value, str(entry["quote"])):
                problems.append(f"{name}: {metric} = {value} does not appear in its quote")
    if problems:
        raise BenchError(f"{path}: " + "; ".join(problems))
    return entries


def _same_metrics(a: Any, b: Any, rel: float = 1e-6) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_metrics(a[k], b[k], rel) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


def run(ctx: Context) -> dict[str, Any]:
    training = read_results(ctx.results).get("training")
    if training is None or training["status"] != "ok":
        raise BenchError(
            "no successful training result in this results folder: run the training section first"
        )
    runs = training["data"]["runs"]
    metrics = runs["flow"]["metrics"]
    published = load_published(ctx.repo / "bench" / "published.yaml")
    # Two runners, one budget: the overhead pair (older results: the flow and direct runs themselves).
    pair = training["data"].get("overhead_runs") or runs
    same = {
        task: _same_metrics(pair["flow"]["metrics"][task], pair["direct"]["metrics"].get(task))
        for task in pair["flow"]["metrics"]
    }
    say(f"quality: {len(metrics)} tasks from the flow run; {len(published)} published results cited")
    return {
        "source": "flow",
        "metrics": metrics,
        "same_in_direct_run": same,
        "budget": runs["flow"].get("params", {}),
        "tracks": runs["flow"]["tracks"],
        "published": published,
        "training_measured_at": training["measured_at"],
    }


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
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


def _metric_value(values: Mapping[str, Any], key: str) -> float | None:
    if key in values:
        return values[key]
    matches = [v for k, v in values.items() if k.startswith(key)]
    return matches[0] if matches else None


def _metric_label(values: Mapping[str, Any], key: str) -> str:
    return next((k for k in values if k.startswith(key)), key)


def render(data: Mapping[str, Any]) -> list[str]:
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
        for protocol in PROTOCOLS:
            if protocol not in task_metrics:
                continue
            families = task_metrics[protocol]
            sample = next(iter(families.values()))
            header = ["family", *[_metric_label(sample, k) for k in keys], "n"]
            rows = []
            for family, values in families.items():
                name = f"**{family}** (selected)" if family == selected else family
                if family == "baseline":
                    name = "baseline (untuned LightGBM, never selected)"
                rows.append(
                    [name, *[number(_metric_value(values, k)) for k in keys], f"{values.get('n', 0):,}"]
                )
            label = "main" if protocol == task_metrics.get("main_protocol") else "comparison"
            lines += [f"**{task}**, holdout grouped by {protocol} ({label})", "", *table(header, rows), ""]
        lines += subsets(task, task_metrics)
    lines += published(data)
    return lines


# The one metric the subsets table shows per task.
SUBSET_METRIC = {"popularity": "r2", "genre": "top1_set_accuracy", "hit": "roc_auc"}


def subsets(task: str, task_metrics: Mapping[str, Any]) -> list[str]:
    """The selected model and the baseline on the artist holdout's album subsets, with the genre given and
    (popularity, hit) without one, as a scoring batch without a genre meets them."""
    found = task_metrics.get("album_subsets")
    key = SUBSET_METRIC.get(task)
    if not found or key is None:
        return []
    protocol = found.get("protocol", "artist")
    conditions = [c for c in ("given", "genre_predicted") if c in found]
    header = ["model"]
    for condition in conditions:
        # The genre task has one condition: its label is the genre.
        label = "" if conditions == ["given"] else ("genre given: " if condition == "given" else "no genre: ")
        header += [f"{label}all", f"{label}album-unseen", f"{label}album-shared"]
    rows = []
    for family in dict.fromkeys([task_metrics["selected"], "baseline"]):
        row = [family]
        for condition in conditions:
            whole = task_metrics if condition == "given" else task_metrics.get("genre_predicted", {})
            row.append(number(whole.get(protocol, {}).get(family, {}).get(key)))
            for subset in ("album_unseen", "album_shared"):
                values = found[condition].get(subset, {}).get(family) or {}
                row.append(number(values.get(key)))
        rows.append(row)
    return [
        f"**{task}**, {key} on the {protocol} holdout's album subsets (the selected model and the untuned "
        "baseline)",
        "",
        *table(header, rows),
        "",
    ]


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
            if name in PUBLISHED_TO_OURS and task_metrics and entry.get("comparable_to") in PROTOCOLS:
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
