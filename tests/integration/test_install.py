"""The install (scripts/install.py, what `make install` runs): uv gets pip's package sources in pip's order,
and every pin of constraints.txt is installable by the command the GitHub workflows run, from the indexes
they name (the CPU build of torch from the PyTorch CPU index; PyPI never serves a `+cpu` version)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _install_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_script", REPO / "scripts" / "install.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = _install_script()


def _pins() -> list[str]:
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_pip_sources_become_uv_options_in_pips_order() -> None:
    listing = "\n".join(
        [
            ":env:.find-links='/opt/wheels'",
            ":env:.extra-index-url='https://download.pytorch.org/whl/cpu'",
            "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
            "global.index-url='https://mirror.example/simple'",
            "global.cert='/etc/ssl/certs/ca-certificates.crt'",
            "global.timeout='60'",
        ]
    )
    sources = install.parse_pip_config(listing)
    # As in pip, the environment's extra-index-url replaces the files' value instead of adding to it.
    assert sources["extra-index-url"] == [PYTORCH_CPU_INDEX]
    assert install.uv_source_args(sources) == [
        "--index",
        "https://mirror.example/simple",  # pip's own index first: uv keeps the first index with a version
        "--index",
        PYTORCH_CPU_INDEX,
        "--find-links",
        "/opt/wheels",
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert install.uv_source_args(install.parse_pip_config(""))[:2] == ["--index", install.PYPI]


def _workflow_installs() -> list[tuple[str, dict[str, str]]]:
    """(workflow/job, the PIP_* environment of its install step) for every job that runs `make install`."""
    found = []
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job_name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                if "make install" in str(step.get("run", "")):
                    env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
                    pip_env = {k: str(v) for k, v in env.items() if k.startswith("PIP_")}
                    found.append((f"{path.name}/{job_name}", pip_env))
    return found


def _listing(pip_env: dict[str, str]) -> str:
    """`pip config list` as a hosted runner prints it: no config files, only these variables."""
    return "\n".join(f":env:.{k[4:].lower().replace('_', '-')}={v!r}" for k, v in pip_env.items())


def test_every_workflow_that_installs_names_the_pytorch_cpu_index() -> None:
    installs = _workflow_installs()
    assert {name.split("/")[0] for name, _ in installs} == {"ci.yml", "retrain.yml"}
    local_builds = [pin for pin in _pins() if "+" in pin]
    assert local_builds == ["torch==2.13.0+cpu"]
    for name, pip_env in installs:
        indexes = install.parse_pip_config(_listing(pip_env))["extra-index-url"]
        assert PYTORCH_CPU_INDEX in indexes, f"{name}: {local_builds} need {PYTORCH_CPU_INDEX}"


def _reachable(url: str) -> bool:
    host = urlparse(url).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def test_every_pin_is_installable_from_the_workflow_indexes(tmp_path: Path) -> None:
    """The workflows' own install command (uv, their indexes, no local configuration), dry run, without
    dependencies: each pin must have a distribution for this interpreter on one of those indexes."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed in this environment (make install bootstraps it)")
    if not _reachable(install.PYPI):
        pytest.skip("PyPI is unreachable from here")
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "-q", "--no-config", str(venv), "--python", sys.executable], check=True)
    checked_any = False
    for name, pip_env in _workflow_installs():
        args = install.uv_source_args(install.parse_pip_config(_listing(pip_env)))
        indexes = [args[i + 1] for i, a in enumerate(args) if a == "--index"]
        unreachable = [url for url in indexes if not _reachable(url)]
        # A pin only an unreachable index serves (the `+cpu` torch: PyTorch's index is not reachable from
        # every sandbox) is checked where that index is; every other pin is checked here, against PyPI.
        pins = [p for p in _pins() if not ("+" in p and unreachable)]
        if len(pins) < len(_pins()):
            skipped = sorted(set(_pins()) - set(pins))
            warnings.warn(f"{name}: {skipped} not checked: {unreachable} unreachable here", stacklevel=1)
        kept = [
            a
            for i, a in enumerate(args)
            if a not in unreachable and not (a == "--index" and args[i + 1] in unreachable)
        ]
        requirements = tmp_path / f"{name.replace('/', '-')}.txt"
        requirements.write_text("\n".join(pins) + "\n", encoding="utf-8")
        target = ["--python", str(venv / "bin" / "python")]
        command = [str(uv), "pip", "install", "--no-config", "--dry-run", "--no-deps", *target, *kept]
        command += ["-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        assert f"Would install {len(pins)} packages" in done.stderr, done.stderr[-2000:]
        checked_any = True
    assert checked_any
