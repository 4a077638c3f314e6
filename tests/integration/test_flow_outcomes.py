"""What a flow run ends as and what it leaves in the Prefect UI: bad batches are rejected and kept while the
rest score (Completed, with the rejections in the run's artifact); a system failure fails the run; training
and drift monitoring publish their summaries as artifacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.batch_scoring import batch_scoring
from flows.drift_monitoring import drift_monitoring
from tests.bad_inputs import BAD_INPUTS
from tests.conftest import TRAINED_TASKS, copy_project, prefect_artifacts
from trackflow.cli import app
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for


def _simulate(root: Path, drift: str = "none", rows: int = 300, name: str | None = None) -> Path:
    paths = ProjectPaths.at(root)
    return Path(simulate_stage.simulate(paths, params_for(paths), drift, rows=rows, name=name)["path"])


def _unreadable_batches(root: Path) -> dict[str, Path]:
    """Each kind of file that cannot be read to its end, in the incoming folder beside good batches."""
    paths = ProjectPaths.at(root)
    incoming = scoring_stage.incoming_dir(paths, params_for(paths))
    rows = pd.read_parquet(_simulate(root, name="source-rows")).astype("string")
    (incoming / "source-rows.parquet").unlink()
    truncated = BAD_INPUTS["truncated_gz"].write(rows, incoming / "cut-off.csv.gz")
    latin1 = BAD_INPUTS["not_utf8"].write(rows, incoming / "latin1.csv")
    parquet = incoming / "half.parquet"
    rows.to_parquet(parquet, index=False)
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    garbage = incoming / "not-gzip.csv.gz"
    garbage.write_bytes(b"this was never gzip\n" * 50)
    return {"cut-off": truncated, "latin1": latin1, "half": parquet, "not-gzip": garbage}


@pytest.fixture
def project(trained_project: Path, tmp_path: Path) -> Path:
    return copy_project(trained_project, tmp_path)


def test_unreadable_batches_are_rejected_and_kept_while_the_good_one_scores(project: Path) -> None:
    paths = ProjectPaths.at(project)
    good = scoring_stage.batch_name(_simulate(project, name="good-one"))
    bad = _unreadable_batches(project)

    state = batch_scoring(root=str(project), return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert [s["batch"] for s in result["scored"]] == [good]
    assert paths.predictions(good).exists()
    rejected = {r["batch"]: r for r in result["rejected"]}
    assert set(rejected) == set(bad)
    for name, source in bad.items():
        assert not source.exists()  # out of the incoming folder: the next daily run does not trip on it
        kept = paths.rejected(name)
        assert (kept / source.name).exists()
        reason = yaml.safe_load((kept / "rejection.json").read_text())["error"]
        assert source.name in reason and source.name in rejected[name]["reason"]
        assert not paths.predictions(name).exists()
    assert "truncated or corrupt" in rejected["cut-off"]["reason"]
    assert "truncated or corrupt" in rejected["not-gzip"]["reason"]

    (artifact,) = prefect_artifacts("batch-scoring", state.state_details.flow_run_id)
    assert "1 batch(es) scored, 4 rejected" in artifact.data
    for name in rejected:
        assert f"| {name} | rejected |" in artifact.data and str(paths.rejected(name)) in artifact.data
    assert f"| {good} | scored | 300 |" in artifact.data


def test_the_cli_exits_zero_on_rejections_and_says_how_many(project: Path) -> None:
    _simulate(project, name="fine")
    _unreadable_batches(project)
    result = CliRunner().invoke(app, ["score", "--root", str(project)])
    assert result.exit_code == 0, result.output
    assert "1 batch(es) scored, 4 rejected" in result.output
    assert "rejected cut-off: " in result.output


def test_a_system_failure_fails_the_run_and_leaves_the_batch_in_place(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _simulate(project, name="waits")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["mlflow"]["tracking_uri"] = "http://127.0.0.1:9"  # nothing listens: the store is unreachable
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    state = batch_scoring(root=str(project), return_state=True)
    assert state.is_failed()
    with pytest.raises(scoring_stage.ScoringError, match="waits"):
        state.result()
    assert batch.exists()  # not rejected: its data was never the problem
    assert not ProjectPaths.at(project).rejected_dir.exists()
    result = CliRunner().invoke(app, ["score", "--root", str(project)])
    assert result.exit_code == 1 and "waits" in result.output


def test_training_publishes_its_summary_with_links_to_the_mlflow_runs(trained_project: Path) -> None:
    recorded = yaml.safe_load((trained_project / "result.yaml").read_text())
    parent = recorded["mlflow_parent_run_id"]
    (artifact,) = [a for a in prefect_artifacts("training-summary") if parent in a.data]
    assert f"[MLflow parent run](http://127.0.0.1:5000/#/runs/{parent})" in artifact.data
    for task in TRAINED_TASKS:
        row = next(line for line in artifact.data.splitlines() if line.startswith(f"| {task} |"))
        assert f"| {recorded['selected'][task]} |" in row and "/#/runs/" in row and "champion" in row


def test_drift_monitoring_publishes_the_verdict_and_the_decision(project: Path) -> None:
    paths = ProjectPaths.at(project)
    batch = _simulate(project, "louder", rows=800)
    scoring_stage.score_file(paths, params_for(paths), batch)
    name = scoring_stage.batch_name(batch)

    state = drift_monitoring(root=str(project), batch=name, retrain=False, return_state=True)

    summary = state.result()
    (artifact,) = prefect_artifacts("drift-monitoring", state.state_details.flow_run_id)
    assert f"# Drift of {name}" in artifact.data
    assert "loudness" in artifact.data and summary["report_path"] in artifact.data
    assert not summary["retrain"]  # no label came back: drift alone never refits the same rows
    assert summary["decision"] in artifact.data
