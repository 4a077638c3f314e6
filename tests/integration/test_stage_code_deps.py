"""The static reading of a stage's code agrees with what the stage really executes: traced on a copy of the
trained project, every project file it runs is one of its dvc.yaml dependencies."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import REPO, copy_project
from trackflow.dependencies import stage_deps
from trackflow.paths import ProjectPaths
from trackflow.pipeline import STAGES
from trackflow.stages.common import params_for
from trackflow.stages.data import featurize, split
from trackflow.stages.evaluate import evaluate_task
from trackflow.stages.register import register_task
from trackflow.stages.train import fit_task
from trackflow.stages.tune import tune_family


@contextmanager
def executed_project_files() -> Iterator[set[str]]:
    """The project source files whose functions run inside the block, on any thread."""
    files: set[str] = set()
    roots = tuple(str(REPO / package) + "/" for package in ("components", "trackflow", "flows"))

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            filename = frame.f_code.co_filename
            if filename.startswith(roots):
                files.add(Path(filename).relative_to(REPO).as_posix())

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield files
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def _runs_within(stage_name: str, call: Callable[[], Any]) -> set[str]:
    with executed_project_files() as files:
        call()
    stage = next(s for s in STAGES if s.name == stage_name)
    return files - set(stage_deps(stage, REPO).code)


def test_what_stages_execute_is_what_their_dependencies_list(trained_project: Path, tmp_path: Path) -> None:
    """Traced for real on a copy of the trained project: every project file a stage's code ran in (the
    saved models' classes included) is one of its dvc.yaml dependencies."""
    root = copy_project(trained_project, tmp_path)
    paths = ProjectPaths.at(root)
    params = params_for(paths)
    for name, call in (
        ("featurize", lambda: featurize(paths, params)),
        ("split", lambda: split(paths, params)),
        ("train", lambda: fit_task(paths, params, "hit")),
        ("evaluate", lambda: evaluate_task(paths, params, "hit")),
        ("register", lambda: register_task(paths, params, "hit")),
    ):
        assert _runs_within(name, call) == set(), name
    shutil.rmtree(root / "optuna")  # a fresh study: every trial runs in the trace
    profiles = {**params.train.profiles, "default": params.train.tuning.model_copy(update={"n_trials": 1})}
    fast = params.model_copy(update={"train": params.train.model_copy(update={"profiles": profiles})})
    assert _runs_within("tune", lambda: tune_family(paths, fast, "hit", "lightgbm")) == set()
