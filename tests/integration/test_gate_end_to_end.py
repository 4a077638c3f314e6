"""Every bad input through the real training flow: the specific error, nothing registered, the champion
unchanged, no later stage output touched. Accepted cases (reordered columns, a few bad rows) run through."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from components.ingest import IngestError
from components.io import read_json
from components.validation import DataValidationError
from flows.training import training
from tests.bad_inputs import BAD_INPUTS, read_raw_text, real_good_frame
from tests.conftest import make_project
from trackflow.acquire import DataAcquisitionError
from trackflow.cli import app
from trackflow.paths import ProjectPaths
from trackflow.stages.common import params_for
from trackflow.tracking import Tracker

STOPPING_ERRORS = {"fetch": DataAcquisitionError, "ingest": IngestError, "validate": DataValidationError}
# Outputs of the stages after the gate: a rejected batch must leave every one of them byte for byte.
GUARDED = ("data/validated", "data/features", "data/splits", "data/models", "data/registry", "metrics")


def _snapshot(root: Path) -> dict[str, str]:
    digests = {}
    for folder in GUARDED:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _registry_state(root: Path) -> tuple[int, str]:
    paths = ProjectPaths.at(root)
    client = Tracker.for_project(paths, params_for(paths)).client
    versions = client.search_model_versions("name='popularity'")
    return len(versions), str(client.get_model_version_by_alias("popularity", "champion").version)


def test_fixture_has_a_champion(champion_project: Path) -> None:
    assert _registry_state(champion_project) == (1, "1")


@pytest.fixture(scope="module")
def good_raw(real_csv: Path) -> pd.DataFrame:
    return real_good_frame(read_raw_text(real_csv), n_rows=2000, seed=0)


@pytest.fixture(scope="module")
def champion_project(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, prefect_harness: None
) -> Iterator[Path]:
    # The gate is the subject here: one task, one quick family is enough for a champion to protect.
    root = make_project(
        tmp_path_factory.mktemp("gate"), train__tasks=["popularity"], train__families=["random_forest"]
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("TRACKS_CSV", str(sample_csv))
        training(root=str(root), fetch=True)
        yield root


REJECTED = [name for name, case in BAD_INPUTS.items() if case.outcome == "rejected"]
ACCEPTED = [name for name, case in BAD_INPUTS.items() if case.outcome == "accepted"]


@pytest.mark.parametrize("name", REJECTED)
def test_bad_input_stops_the_flow_and_loses_nothing(
    name: str, champion_project: Path, good_raw: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BAD_INPUTS[name]
    bad_file = case.write(good_raw, tmp_path / "bad.csv")
    before_outputs = _snapshot(champion_project)
    before_registry = _registry_state(champion_project)
    monkeypatch.setenv("TRACKS_CSV", str(bad_file))

    with pytest.raises(STOPPING_ERRORS[case.stage]) as info:
        training(root=str(champion_project), fetch=True)
    assert case.expect_in_error in str(info.value)

    assert _registry_state(champion_project) == before_registry  # nothing registered, champion unchanged
    assert _snapshot(champion_project) == before_outputs  # no later output touched, nothing half-written
    if case.stage == "validate":
        report = (champion_project / "reports" / "validation" / "report.html").read_text()
        assert "REJECTED" in report.upper()


@pytest.mark.parametrize("name", ACCEPTED)
def test_tolerated_input_runs_through(
    name: str, champion_project: Path, good_raw: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BAD_INPUTS[name]
    monkeypatch.setenv("TRACKS_CSV", str(case.write(good_raw, tmp_path / "input.csv")))
    versions_before, _ = _registry_state(champion_project)
    result = training(root=str(champion_project), fetch=True)
    assert result["validate"]["rows_quarantined"] == case.expect_quarantined
    assert result["validate"]["rows_valid"] + case.expect_quarantined == result["ingest"]["rows"]
    for key, value in case.expect_summary.items():
        assert result["validate"][key] == value
    quarantined = pd.read_parquet(champion_project / "data" / "quarantine" / "quarantined.parquet")
    assert len(quarantined) == case.expect_quarantined
    if case.expect_in_reason:
        assert quarantined["quarantine_reason"].str.contains(case.expect_in_reason, regex=False).any()
    assert _registry_state(champion_project)[0] == versions_before + 1
    paths = ProjectPaths.at(champion_project)
    client = Tracker.for_project(paths, params_for(paths)).client
    validation_run = client.get_run(result["validate"]["mlflow_run_id"])
    assert validation_run.data.metrics["rows_quarantined"] == case.expect_quarantined


def test_cli_exits_non_zero_and_names_the_problem(
    champion_project: Path, good_raw: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = BAD_INPUTS["missing_column"].write(good_raw, tmp_path / "bad.csv")
    runner = CliRunner()
    root = ["--root", str(champion_project)]
    assert runner.invoke(app, ["fetch-data", "--tracks-csv", str(bad), *root]).exit_code == 0
    assert runner.invoke(app, ["ingest", *root]).exit_code == 0
    result = runner.invoke(app, ["validate", *root])
    assert result.exit_code == 1
    assert "missing column(s): energy" in result.output
    assert read_json(ProjectPaths.at(champion_project).ingest_meta)["rows"] == len(good_raw)
