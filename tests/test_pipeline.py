"""The one pipeline definition (trackflow/pipeline.py): dvc.yaml is what it generates, every stage lists the
code, config files and params its function reaches, and the static reading of the code agrees with what a
stage really executes."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, copy_project
from trackflow import model_stages, stages
from trackflow.codedeps import Analyzer, ModuleIndex
from trackflow.paths import ProjectPaths
from trackflow.pipeline import (
    EVALUATE,
    REGISTER,
    STAGES,
    TUNE,
    VALIDATE,
    check_definition,
    render_dvc_yaml,
    stage_deps,
    undeclared_params,
)


def _dvc_stages() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: entry.get("do", entry) for name, entry in raw.items()}


def test_dvc_yaml_is_what_the_definition_generates() -> None:
    assert (REPO / "dvc.yaml").read_text(encoding="utf-8") == render_dvc_yaml(REPO), (
        "dvc.yaml is stale: run `make dvc-yaml` (trackflow dvc-yaml) and commit it"
    )
    assert list(_dvc_stages()) == [s.name for s in STAGES]


def test_every_stage_lists_the_code_and_configs_it_reaches() -> None:
    listed = _dvc_stages()
    for stage in STAGES:
        deps = stage_deps(stage, REPO)
        missing = set(deps.code + deps.configs) - set(listed[stage.name]["deps"])
        assert not missing, f"{stage.name} misses {sorted(missing)}"
        assert deps.code, stage.name
        assert f"{stage.function.__module__.replace('.', '/')}.py" in deps.code
        assert not deps.hand_built_config_paths, (
            f"{stage.name}: config paths built by hand {deps.hand_built_config_paths}; use ProjectPaths"
        )
    # What the issue found missing: selection, metrics and the gate live in model_stages.py; evaluate runs
    # the task specs and the saved models' own classes (a pickle names no import).
    evaluate = set(stage_deps(EVALUATE, REPO).code)
    assert {"trackflow/model_stages.py", "components/tasks.py", "components/task_model.py"} <= evaluate
    assert {"components/features.py", "components/families.py", "components/torch_mlp.py"} <= evaluate
    assert {"configs/expectations/tracks.yaml", "configs/genres.txt"} <= set(stage_deps(VALIDATE).configs)
    assert "configs/families.yaml" in stage_deps(TUNE).configs
    # And no more than it reaches: the ingest stage does not depend on the model code.
    ingest = set(listed["ingest"]["deps"])
    assert not ingest & {"components/families.py", "trackflow/model_stages.py", "components/validation.py"}


def test_declared_params_cover_what_each_stage_reads() -> None:
    check_definition()
    for stage in STAGES:
        assert undeclared_params(stage, REPO) == [], stage.name
    # Operational keys are never DVC params: moving the MLflow store must not rerun training.
    for entry in _dvc_stages().values():
        assert not [k for k in entry.get("params", []) if k.startswith(("mlflow", "fetch"))]
    assert "register.promotion_margin" in stage_deps(REGISTER).params_read or "register" in REGISTER.params
    assert {"train.profile", "train.profiles", "train.families"} <= set(stage_deps(TUNE).params_read)


def _module(root: Path, name: str, text: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.parents:
        if parent == root:
            break
        (parent / "__init__.py").touch()
    path.write_text(text, encoding="utf-8")


def test_the_static_reading_follows_imports_of_every_kind(tmp_path: Path) -> None:
    """Function-level and relative imports, re-exports, classes reached whole, module constants, params
    read through an alias; a module only imported, never used, is not a dependency."""
    _module(
        tmp_path,
        "pkg.stage",
        (
            "from pkg import helpers\n"
            "from pkg.unused import nothing\n"
            "TABLE = helpers.TABLE\n"
            "def run(paths, params):\n"
            "    from .late import compute\n"
            "    section = params.train\n"
            "    return compute(section.seed) + helpers.scale(params.split.protocol) + TABLE\n"
        ),
    )
    _module(
        tmp_path,
        "pkg.helpers",
        "from pkg.core import Model as _Model\nTABLE = 1\ndef scale(x):\n    return _Model().fit(x)\n",
    )
    _module(
        tmp_path,
        "pkg.core",
        "class Model:\n    def fit(self, x):\n        from pkg.deep import f\n        return f(x)\n",
    )
    _module(tmp_path, "pkg.deep", "def f(x):\n    return x\n")
    _module(tmp_path, "pkg.late", "from pkg.reexport import compute\n")
    _module(tmp_path, "pkg.reexport", "from pkg.impl import compute\n")
    _module(tmp_path, "pkg.impl", "def compute(seed):\n    return seed\n")
    _module(tmp_path, "pkg.unused", "def nothing():\n    return 0\n")
    index = ModuleIndex(tmp_path, packages=("pkg",))
    reach = Analyzer(index).reach([("pkg.stage", "run")])
    assert reach.files(index) == [
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/deep.py",
        "pkg/helpers.py",
        "pkg/impl.py",
        "pkg/late.py",
        "pkg/reexport.py",
        "pkg/stage.py",
    ]
    assert reach.params_keys == {"train.seed", "split.protocol"}


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
    params = stages.params_for(paths)
    for name, call in (
        ("featurize", lambda: stages.featurize(paths, params)),
        ("split", lambda: stages.split(paths, params)),
        ("train", lambda: model_stages.fit_task(paths, params, "hit")),
        ("evaluate", lambda: model_stages.evaluate_task(paths, params, "hit")),
        ("register", lambda: model_stages.register_task(paths, params, "hit")),
    ):
        assert _runs_within(name, call) == set(), name
    shutil.rmtree(root / "optuna")  # a fresh study: every trial runs in the trace
    profiles = {**params.train.profiles, "default": params.train.tuning.model_copy(update={"n_trials": 1})}
    fast = params.model_copy(update={"train": params.train.model_copy(update={"profiles": profiles})})
    assert _runs_within("tune", lambda: model_stages.tune_family(paths, fast, "hit", "lightgbm")) == set()
