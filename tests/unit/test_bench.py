"""The benchmark suite's pure parts: statistics, the stage table, overhead pairs, the light budget, DVC output
parsing, CPU steal, the report's handling of failures and foreign files, the published quotes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bench import quality
from bench.harness import (
    BenchError,
    Context,
    host_cpu_ticks,
    read_results,
    spread,
    steal_share,
    write_result,
)
from bench.report import render
from tests.conftest import REPO


def test_report_shows_failures_and_rejects_foreign_files(tmp_path: Path) -> None:
    ctx = Context(repo=REPO, work=tmp_path, results=tmp_path / "results")
    write_result(
        ctx, "drift", "error", 0.5, {"error": "drift_job failed with exit code 1: KeyError 'energy'"}
    )
    report = render(read_results(ctx.results))
    drift = report.split("## Drift report", 1)[1].split("\n## ", 1)[0]
    assert "_Failed" in drift and "KeyError 'energy'" in drift
    (ctx.results / "notes.json").write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(BenchError, match=r"notes\.json: not a benchmark results file"):
        read_results(ctx.results)


def test_spread_is_median_min_max() -> None:
    assert spread([3.0, 1.0, 2.0]) | {"values": None} == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "n": 3,
        "values": None,
    }
    assert spread([4.0])["median"] == spread([4.0])["min"] == 4.0
    with pytest.raises(ValueError, match="no measurements"):
        spread([])


def test_cpu_steal_is_measured_and_reported(tmp_path: Path) -> None:
    before = {
        "user": 100,
        "nice": 0,
        "system": 20,
        "idle": 60,
        "iowait": 0,
        "irq": 0,
        "softirq": 0,
        "steal": 20,
    }
    after = {**before, "user": 150, "system": 30, "idle": 70, "steal": 50}  # 30 of 100 new ticks stolen
    assert steal_share(before, after) == pytest.approx(0.3)
    assert steal_share(None, after) is None and steal_share(before, before) is None
    now = host_cpu_ticks()
    assert now is None or (set(now) >= {"steal", "idle"} and all(v >= 0 for v in now.values()))
    ctx = Context(repo=REPO, work=tmp_path, results=tmp_path / "results")
    run = {"started_at": "t", "total_s": 60.0, "sections": ["drift"], "cores": 2, "complete": False}
    write_result(ctx, "run", "ok", 60.0, {**run, "cpu_steal_share": 0.3})
    assert "60.0 s in all on 2 cores (CPU steal 30%)" in render(read_results(ctx.results))


def test_published_numbers_are_in_their_quotes(tmp_path: Path) -> None:
    entries = quality.load_published(REPO / "bench" / "published.yaml")
    assert {e["task"] for e in entries} >= {"popularity", "genre"}
    assert all(e["url"].startswith("https://") and e["leaks"] in (True, False, "likely") for e in entries)
    # A mistyped number is caught: it no longer appears in the quote it claims to come from.
    document = yaml.safe_load((REPO / "bench" / "published.yaml").read_text(encoding="utf-8"))
    document["sources"][0]["metrics"]["rmse"] = 14.0391
    tampered = tmp_path / "published.yaml"
    tampered.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(BenchError, match=r"rmse = 14.0391 does not appear in its quote"):
        quality.load_published(tampered)


def test_stage_table_walls_stages_in_dag_order_without_their_parts() -> None:
    from bench.training import stage_table

    calls = [
        {"stage": "ingest", "task": None, "part": None, "start_s": 0.0, "end_s": 2.0},
        {"stage": "tune", "task": "genre", "part": None, "start_s": 10.0, "end_s": 41.0},
        {"stage": "tune", "task": "genre", "part": "lightgbm", "start_s": 10.0, "end_s": 30.0},
        {"stage": "tune", "task": "genre", "part": "mlp", "start_s": 11.0, "end_s": 25.0},
        {"stage": "tune", "task": "genre", "part": "xgboost", "start_s": 25.0, "end_s": 40.5},
        {"stage": "train", "task": "genre", "part": None, "start_s": 41.0, "end_s": 50.0},
        {"stage": "tune", "task": "hit", "part": None, "start_s": 50.0, "end_s": 55.0},
    ]
    assert stage_table(calls) == [
        {"stage": "ingest", "seconds": 2.0},
        {"stage": "tune@genre", "seconds": 31.0},
        {"stage": "train@genre", "seconds": 9.0},
        {"stage": "tune@hit", "seconds": 5.0},
    ]


def _overhead_run(mode: str, total: float, ingest: float) -> dict:
    return {
        "mode": mode,
        "total_s": total,
        "prefect_start_s": 10.0 if mode == "flow" else None,
        "stage_seconds": [{"stage": "ingest", "seconds": ingest}],
        "peak_rss_mb": 100.0,
        "process_cpu_s": total,
    }


def test_overhead_pairs_adjacent_runs_and_reports_their_median() -> None:
    from bench.training import OVERHEAD_ORDER, overhead, overhead_pairs

    assert OVERHEAD_ORDER == ("flow", "direct", "direct", "flow")  # ABBA: host drift hits both alike
    runs = [
        _overhead_run("flow", 110.0, 2.0),
        _overhead_run("direct", 100.0, 1.0),
        _overhead_run("direct", 120.0, 3.0),
        _overhead_run("flow", 126.0, 4.0),
    ]
    pairs = overhead_pairs(runs)
    assert [p["ratio"] for p in pairs] == pytest.approx([1.10, 1.05])
    assert [p["ratio_with_start"] for p in pairs] == pytest.approx([1.20, 136.0 / 120.0])
    with pytest.raises(ValueError, match="one flow and one direct"):
        overhead_pairs([runs[0], runs[3]])

    data = {
        "overhead_all_runs": runs,
        "overhead_order": list(OVERHEAD_ORDER),
        "overhead_pairs": pairs,
        "overhead_ratio": 1.075,
        "overhead_ratio_spread": spread([p["ratio"] for p in pairs]),
        "overhead_ratio_with_start": 1.1667,
        "tune_threads": 2,
    }
    text = "\n".join(overhead(data, {"flow": runs[0], "direct": runs[1]}, {"n_trials": 1}))
    assert "**1.075 [1.050 - 1.100]**" in text  # the median of the pairs, with min and max
    assert "| `ingest` | 3.00 s | 2.00 s |" in text  # per-stage medians over each runner's runs
    assert "| 2 | 2 min 06.0 s | 2 min 00.0 s | 1.050 |" in text


def test_light_params_shrink_the_budget_and_keep_two_tasks(tmp_path: Path) -> None:
    from bench.training import LIGHT_PROFILE, light_params

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert light_params(tmp_path) == ["popularity", "hit"]
    params = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    assert params["train"]["tasks"] == ["popularity", "hit"]
    assert params["train"]["profiles"][params["train"]["profile"]] == LIGHT_PROFILE
    params["train"]["tasks"] = ["genre"]  # none of the overhead tasks: the project's own stay
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert light_params(tmp_path) == ["genre"]


def test_dvc_helpers_read_what_dvc_prints(tmp_path: Path) -> None:
    from bench.repro import downstream, ran_stages, touch_parameter, upstream

    output = (
        "Stage 'split' didn't change, skipping\nRunning stage 'evaluate@hit':\n> trackflow evaluate --task "
        "hit\nRunning stage 'register@hit':\n> trackflow register --task hit\n"
    )
    assert ran_stages(output) == ["evaluate@hit", "register@hit"]
    edges = [("split", "evaluate@hit"), ("evaluate@hit", "register@hit"), ("split", "discover-map")]
    assert downstream({"evaluate@hit"}, edges) == {"evaluate@hit", "register@hit"}
    assert upstream({"register@hit"}, edges) == {"split", "evaluate@hit", "register@hit"}

    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_text(encoding="utf-8")
    old, new = touch_parameter(params)
    after = params.read_text(encoding="utf-8")
    assert yaml.safe_load(after)["evaluate"]["hit_min_precision"] == new != old
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 1  # one line, comments and layout untouched


def test_genre_input_table_says_which_options_hold_up_without_a_genre() -> None:
    from bench import genre_input

    def scores(rmse: float, auc: float) -> dict[str, float]:
        return {"rmse": rmse, "roc_auc": auc}

    data = {
        "train_rows": 100,
        "test_rows": 20,
        "guess_top1_set_accuracy": 0.2,
        "options": [
            {"option": "reference", "given": scores(20.0, 0.70), "absent": scores(20.0, 0.70)},
            {"option": "guess fed in", "given": scores(16.0, 0.87), "absent": scores(21.0, 0.66)},
            {"option": "fallback", "given": scores(16.0, 0.87), "absent": scores(20.1, 0.698)},
        ],
    }
    rows = [line for line in genre_input.render(data) if line.startswith("| ") and "---" not in line][1:]
    assert [row.rsplit("|", 2)[-2].strip() for row in rows] == ["yes", "no", "yes"]


def test_serving_section_reports_percentiles_errors_and_the_speed_up() -> None:
    from bench import serving

    assert serving.percentiles([0.001, 0.002, 0.003, 0.004])["p50_ms"] == pytest.approx(2.5)
    assert serving.percentiles([]) == {"n": 0}
    latency = {"n": 100, "p50_ms": 8.0, "p95_ms": 11.0, "p99_ms": 14.0, "mean_ms": 8.5, "errors": 0}
    loaded = {
        **latency,
        "n": 96,
        "clients": 4,
        "requests": 100,
        "answered": 98,
        "errors": 2,
        "unsent": 0,
        "wall_s": 2.0,
        "requests_per_s": 49.0,
        "deadline_s": 120.0,
    }
    data = {
        "load": {
            "single": {"genre_given": latency, "genre_absent": latency},
            "load": loaded,
            "models": {"popularity": "3", "hit": "2", "genre": "1"},
        },
        "batch": {
            "rows": 50000,
            "repeats": 3,
            "inference_rows_per_s": {"median": 90000.0},
            "before_rows_per_s": {"median": 30000.0},
            "speedup": 3.0,
            "gate_rows_per_s": {"median": 45000.0},
            "gate_share": 0.66,
            "largest_difference": 0.0,
        },
    }
    lines = serving.render(data)
    rows = [line for line in lines if line.startswith("| 4 clients")]
    assert rows == ["| 4 clients | 96 | 8.0 ms | 11.0 ms | 14.0 ms | 2 |"]
    assert any(line == "| 50,000 | 90,000 | 30,000 | **3.00x** | 45,000 | 66% |" for line in lines)
    assert any("popularity v3" in line for line in lines)


def test_the_quality_section_shows_the_baseline_beside_the_selected_model_on_the_album_subsets() -> None:
    def cell(value: float) -> dict[str, float]:
        return {"roc_auc": value, "n": 10}

    metrics = {
        "selected": "blend",
        "main_protocol": "artist",
        "artist": {"blend": cell(0.91), "baseline": cell(0.90)},
        "genre_predicted": {"artist": {"blend": cell(0.80), "baseline": cell(0.79)}},
        "album_subsets": {
            "protocol": "artist",
            "given": {
                "album_unseen": {"blend": cell(0.92), "baseline": cell(0.915)},
                "album_shared": {"blend": cell(0.88), "baseline": cell(0.87)},
            },
            "genre_predicted": {
                "album_unseen": {"blend": cell(0.795), "baseline": cell(0.785)},
                "album_shared": {"blend": cell(0.84), "baseline": None},
            },
        },
    }
    lines = quality.subsets("hit", metrics)
    rows = [line for line in lines if line.startswith("| blend") or line.startswith("| baseline")]
    assert rows == [
        "| blend | 0.9100 | 0.9200 | 0.8800 | 0.8000 | 0.7950 | 0.8400 |",
        "| baseline | 0.9000 | 0.9150 | 0.8700 | 0.7900 | 0.7850 | n/a |",
    ]
    assert quality.subsets("hit", {**metrics, "album_subsets": None}) == []
