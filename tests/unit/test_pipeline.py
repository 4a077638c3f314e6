"""The one pipeline definition (trackflow/pipeline.py): dvc.yaml is what it generates, every stage lists the
code, config files and params its function reaches, read statically from the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from trackflow.codedeps import Analyzer, ModuleIndex
from trackflow.dependencies import check_definition, render_dvc_yaml, stage_deps, undeclared_params
from trackflow.pipeline import EVALUATE, REGISTER, STAGES, TUNE, VALIDATE


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
    # What a hand-written list missed: evaluate runs the task specs and the saved models' own classes (a
    # pickle names no import); register reads the holdout rows.
    evaluate = set(stage_deps(EVALUATE, REPO).code)
    assert {"trackflow/stages/evaluate.py", "components/tasks.py", "components/task_model.py"} <= evaluate
    assert {
        "components/features.py",
        "components/families/estimators.py",
        "components/torch_mlp.py",
    } <= evaluate
    assert "trackflow/stages/training.py" in stage_deps(REGISTER, REPO).code
    assert {"configs/expectations/tracks.yaml", "configs/genres.txt"} <= set(stage_deps(VALIDATE).configs)
    assert "configs/families.yaml" in stage_deps(TUNE).configs
    # And no more than it reaches: the ingest stage does not depend on the model code.
    ingest = set(listed["ingest"]["deps"])
    assert not ingest & {
        "components/families/__init__.py",
        "trackflow/stages/train.py",
        "components/validation/checks.py",
    }


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
