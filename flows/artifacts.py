"""What a flow run shows in the Prefect UI (its Artifacts tab): the training summary per task with links to
the MLflow runs, each scoring batch's outcome with the rejection reasons, the drift verdict with its report
and the retraining decision. The markdown is built from the runs' own results; keys group a flow's runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact

from components.schema import PROTOCOLS
from components.tasks import GENRE_PREDICTED
from trackflow.tracking import run_url

TRAINING_KEY = "training-summary"
SCORING_KEY = "batch-scoring"
DRIFT_KEY = "drift-monitoring"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def training_markdown(result: Mapping[str, Any]) -> str:
    rows = []
    for task, outcome in result["tasks"].items():
        metrics, registered = outcome["evaluate"], outcome["register"]
        gate, main = registered["gate_metric"], metrics["main_protocol"]
        other = next(p for p in PROTOCOLS if p != main)
        selected = metrics["selected"]
        stopped = outcome["tune"]["stopped_by_timeout"]
        guessed = metrics.get(GENRE_PREDICTED, {}).get(main, {}).get(selected)
        rows.append(
            [
                task,
                selected,
                f"{gate} {metrics[main][selected][gate]:.4f} ({main}) / {metrics[other][selected][gate]:.4f} "
                f"({other})",
                f"{gate} {guessed[gate]:.4f} ({main})" if guessed else "",
                f"v{registered['version']} {', '.join(registered['aliases'])}",
                registered["promotion"],
                ", ".join(outcome["failed"]) or "none",
                "wall-clock limit: " + ", ".join(stopped) if stopped else "trial counts",
                f"[run]({run_url(registered['run_id'])})",
            ]
        )
    dvc = result["dvc"]
    lines = [
        "# Training",
        "",
        f"{result['ingest']['rows']:,} rows in, {result['validate']['rows_valid']:,} validated "
        f"({result['validate']['rows_quarantined']:,} quarantined), {result['featurize']['tracks_out']:,} "
        f"tracks. [MLflow parent run]({run_url(result['mlflow_parent_run_id'])})",
        "",
        *_table(
            [
                "task",
                "selected",
                "holdout",
                "holdout, no genre given",
                "registered",
                "promotion",
                "failed families",
                "studies",
                "MLflow",
            ],
            rows,
        ),
        "",
        "dvc.lock: "
        + (f"{len(dvc['stages'])} stages recorded" if dvc["recorded"] else f"left alone ({dvc['reason']})"),
    ]
    return "\n".join(lines) + "\n"


def scoring_markdown(
    scored: Sequence[Mapping[str, Any]],
    rejected: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, Any]] = (),
) -> str:
    rows = [
        [
            s["batch"],
            "scored",
            s["rows_in"],
            s["rows_scored"],
            s["rows_quarantined"],
            s["predictions_path"],
            "",
        ]
        for s in scored
    ]
    rows += [[r["batch"], "rejected", "", 0, "", r["kept_in"], r["reason"]] for r in rejected]
    rows += [[f["batch"], "failed (system)", "", 0, "", "", f["error"]] for f in failed]
    lines = [
        "# Batch scoring",
        "",
        f"{len(scored)} batch(es) scored, {len(rejected)} rejected and kept aside with the reasons"
        + (f", {len(failed)} failed for a reason other than their data." if failed else "."),
        "",
        *_table(["batch", "outcome", "rows in", "scored", "quarantined", "file", "reason"], rows),
    ]
    return "\n".join(lines) + "\n"


def drift_markdown(summary: Mapping[str, Any]) -> str:
    drifted = ", ".join(summary["drifted_columns"]) or "none"
    retraining = summary.get("retraining")
    if retraining:
        decision = f"retrained ({retraining['mode']}): {summary['retrain_reason']}"
    elif summary["retrain"]:
        decision = f"retraining due but disabled: {summary['retrain_reason']}"
    else:
        decision = summary["decision"]
    lines = [
        f"# Drift of {summary['batch']}",
        "",
        f"- drifted input columns: {len(summary['drifted_columns'])} of {len(summary['columns'])}: {drifted}",
        f"- drifted predictions: {', '.join(summary['drifted_predictions']) or 'none'}",
        f"- drifted share: {summary['drift_share']:.2f} (retraining from {summary['retrain_share']:.2f})",
        f"- report: `{summary['report_path']}`, [MLflow run]({run_url(summary['mlflow_run_id'])})",
        f"- decision: {decision}",
    ]
    performance = summary.get("performance")
    if performance and performance.get("rows"):
        realised = "; ".join(
            f"{task} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k in ("rmse", "r2", "roc_auc"))
            for task, m in performance["realised"].items()
            if task != "genre"
        )
        lines.append(
            f"- realised on {performance['rows']} labelled tracks of {performance['batch']}: {realised} "
            f"(holdout {performance['holdout']}); degraded: {'; '.join(performance['degraded']) or 'no'}"
        )
    if retraining and retraining["mode"] == "deployment":
        lines.append(f"- retraining flow run: `{retraining['flow_run_id']}` of {retraining['deployment']}")
    return "\n".join(lines) + "\n"


def publish(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(markdown=markdown, key=key, description=description)
