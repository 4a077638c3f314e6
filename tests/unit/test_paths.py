"""Names that become part of a path are checked at the door (trackflow/paths.py), and a flow's root must be a
trackflow project."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackflow.paths import InvalidNameError, NotAProjectError, ProjectPaths, checked_name


@pytest.mark.parametrize("name", ["simulated-none-42", "audio-clips", "batch.2026_12_01", "A1", "x"])
def test_plain_names_pass(name: str) -> None:
    assert checked_name("batch", name) == name


@pytest.mark.parametrize("name", ["../../../x", "a/b", "", ".hidden", "-rf", "a b", "x\n", "..", "é"])
def test_anything_else_is_refused_with_the_name_in_the_message(name: str) -> None:
    with pytest.raises(InvalidNameError, match="batch name"):
        checked_name("batch", name)


def test_paths_refuse_a_name_that_would_leave_the_project(tmp_path: Path) -> None:
    paths = ProjectPaths.at(tmp_path)
    for method in (
        paths.predictions,
        paths.predictions_summary,
        paths.rejected,
        paths.drift_report,
        paths.audio_batch,
    ):
        with pytest.raises(InvalidNameError, match=r"'\.\./\.\./x'"):
            method("../../x")
    with pytest.raises(InvalidNameError, match="task name"):
        paths.task_metrics("../metrics")
    assert paths.predictions("ok-1").parent == tmp_path / "data" / "predictions"


def test_a_root_must_be_a_trackflow_project(tmp_path: Path) -> None:
    with pytest.raises(NotAProjectError, match=r"no params\.yaml and no dvc\.yaml"):
        ProjectPaths.project(tmp_path)
    (tmp_path / "params.yaml").write_text("{}")
    with pytest.raises(NotAProjectError, match=r"no dvc\.yaml"):
        ProjectPaths.project(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}")
    assert ProjectPaths.project(tmp_path).root == tmp_path.resolve()
