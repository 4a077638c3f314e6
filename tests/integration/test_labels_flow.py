"""Labels flowing back into retraining, on the champions of a real (small) training run: a drifted batch of
new tracks is scored; monitored without labels it is recorded as "drift, no new labels" and nothing
retrains; labelled with `trackflow label`, the next monitor run measures the champion's realised error and
retrains on more rows, with the labelled batch as the forward holdout of the gate."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from components.io import read_json
from flows.artifacts import DRIFT_KEY
from flows.drift_monitoring import drift_monitoring
from tests.conftest import copy_project, prefect_artifacts
from trackflow.cli import app
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for


def _new_tracks_batch(root: Path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """A genre-mix batch of held-out real tracks under new ids and new artists (so that ~80% of them fall
    on the training side of the artist split once labelled), and their true outcomes."""
    paths = ProjectPaths.at(root)
    made = simulate_stage.simulate(paths, params_for(paths), "genre_mix", rows=1500, name="new-tracks")
    batch = pd.read_parquet(made["path"])
    truth = pd.read_parquet(paths.features).set_index("track_id").loc[batch["track_id"]]
    renamed = batch.assign(
        track_id=[f"NEW{i:019d}" for i in range(len(batch))],  # the dataset's id format
        artists=[f"New Artist {i % 100}" for i in range(len(batch))],
    )
    renamed.to_parquet(made["path"], index=False)
    labels = pd.DataFrame(
        {
            "track_id": renamed["track_id"],
            # Integers, as Spotify reports it (a track listed twice may have a median of .5 in the table).
            "popularity": truth["popularity"].round().astype("int64").to_numpy(),
            "track_genre": truth["track_genre"].to_numpy(),
        }
    )
    return made["batch"], renamed, labels


def test_drift_without_labels_does_not_retrain_and_labels_retrain_on_more_rows(
    trained_project: Path, tmp_path: Path
) -> None:
    root = copy_project(trained_project, tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["tasks"] = ["popularity"]  # enough to show the retraining; keeps the test short
    params["train"]["families"] = ["random_forest"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = ProjectPaths.at(root)
    client = MlflowClient(f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    name, batch, labels = _new_tracks_batch(root)
    scoring_stage.score_file(paths, params_for(paths), Path(root / "data" / "incoming" / f"{name}.parquet"))
    versions_before = len(client.search_model_versions("name='popularity'"))

    # Drift without new labels: recorded in the summary, the MLflow run and the Prefect artifact; no retrain.
    started = time.perf_counter()
    summary = drift_monitoring(root=str(root), batch=name)
    print(f"drift-without-labels monitor run: {time.perf_counter() - started:.1f} s")
    assert summary["drift_due"] and not summary["retrain"] and "retraining" not in summary
    assert summary["decision"].startswith("drift, no new labels") and summary["new_label_files"] == []
    tags = client.get_run(summary["mlflow_run_id"]).data.tags
    assert tags["retrain_decision"].startswith("drift, no new labels") and tags["retrain"] == "False"
    assert "drift, no new labels" in prefect_artifacts(DRIFT_KEY)[0].data
    assert len(client.search_model_versions("name='popularity'")) == versions_before

    # Bad labels are refused, naming the problem; nothing is written.
    runner = CliRunner()
    stray = tmp_path / "stray.csv"
    pd.DataFrame({"track_id": ["not-in-batch"], "popularity": [3]}).to_csv(stray, index=False)
    refused = runner.invoke(app, ["label", name, str(stray), "--root", str(root)])
    assert refused.exit_code == 1 and "not-in-batch" in refused.output
    assert not list(paths.labels_dir.glob("*.parquet"))

    # Labels, one genre in another spelling and one unknown: the unknown row fails the gate, the rest land.
    labels.loc[0, "track_genre"] = "Polka Step"
    first = labels["track_genre"].str.split("|").str[0]
    labels.loc[1:, "track_genre"] = first[1:].str.replace("-", " ").str.upper()  # "HIP HOP" for hip-hop
    labels_file = tmp_path / "labels.csv"
    labels.to_csv(labels_file, index=False)
    labelled = runner.invoke(app, ["label", name, str(labels_file), "--root", str(root)])
    assert labelled.exit_code == 0, labelled.output
    written = list(paths.labels_dir.glob(f"{name}.*.parquet"))
    assert len(written) == 1
    stored = pd.read_parquet(written[0])
    assert len(stored) == len(batch) - 1 and "NEW0000000000000000000" not in set(stored["track_id"])
    assert set(stored["track_genre"]) <= set(first[1:])  # normalised to the dataset's spellings
    rows_before = read_json(paths.task_models("popularity") / "selection.json")["train_rows"]["artist"]

    # New labels and drift: the champion's realised error is measured, and retraining learns the labels.
    summary = drift_monitoring(root=str(root), batch=name)
    assert summary["retrain"] and summary["retraining"]["mode"] == "in-process"
    assert summary["new_label_files"] == [written[0].name]
    performance = summary["performance"]
    assert performance["rows"] == len(stored) and performance["realised"]["popularity"]["rmse"] > 0
    assert Path(performance["report_path"]).read_text().lstrip().startswith("<")
    run = client.get_run(summary["retraining"]["mlflow_parent_run_id"])
    assert run.data.tags["trigger"] == "drift" and run.info.status == "FINISHED"
    assert name in run.data.tags["retrain_reason"] and "new label file" in run.data.tags["retrain_reason"]
    assert not summary["retraining"]["dvc"]["recorded"]  # not what `dvc repro` would run
    selection = read_json(paths.task_models("popularity") / "selection.json")
    assert selection["train_rows"]["artist"] > rows_before
    assert 0.6 * len(stored) < selection["labelled_train_rows"]["artist"] < len(stored)  # the train side
    registered = read_json(paths.task_registration("popularity"))
    forward = registered["forward_holdout"]
    assert forward["batch"] == name and 0 < forward["rows"] < 0.4 * len(stored)
    assert forward["challenger"] > 0 and forward["champion"] > 0  # RMSE of both on the batch's holdout side
    version = client.get_model_version("popularity", str(registered["version"]))
    assert version.tags["labels_through"] == stored["labelled_at"].max().isoformat()
    assert version.tags["forward_holdout_batch"] == name

    # The same batch again: the latest models learned these labels, so nothing is new and nothing retrains.
    again = drift_monitoring(root=str(root), batch=name)
    assert not again["retrain"] and again["new_label_files"] == []
