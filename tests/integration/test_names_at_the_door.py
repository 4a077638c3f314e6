"""Names from the command line, a flow or a deployment parameter are refused before any file is touched;
a flow's root must be a trackflow project."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.drift_monitoring import drift_monitoring
from tests.conftest import make_project
from trackflow.cli import app
from trackflow.paths import InvalidNameError, NotAProjectError


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_the_cli_refuses_a_batch_name_that_is_a_path(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    before = _files(tmp_path)
    for command in (
        ["monitor", "--batch", "../../../x"],
        ["simulate-batch", "--name", "../escape"],
        ["extract-audio", str(tmp_path), "--batch", "a/b"],
        ["promote", "../popularity", "1", "--reason", "r"],
    ):
        result = CliRunner().invoke(app, [*command, "--root", str(root)])
        assert result.exit_code == 2, (command, result.output)
        assert "is not allowed" in result.output, result.output
    assert _files(tmp_path) == before  # nothing written, inside the project or out


def test_a_flow_refuses_a_bad_name_and_a_root_that_is_no_project(
    tmp_path: Path, prefect_harness: None
) -> None:
    root = make_project(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(InvalidNameError, match=r"'\.\./x'"):
        drift_monitoring(root=str(root), batch="../x")
    with pytest.raises(NotAProjectError, match="not a trackflow project"):
        drift_monitoring(root=str(tmp_path / "elsewhere"), batch="ok")
    assert _files(tmp_path) == before
    result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "not a trackflow project" in result.output
