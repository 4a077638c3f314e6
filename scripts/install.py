"""Create the virtual environment and install the pinned project into it: uv first, pip as the fallback.

`make install` runs this with the system Python; it needs nothing but the standard library. uv resolves and
unpacks the pinned set several times faster than pip, but it does not read pip's configuration, and that is
where a machine keeps its package sources (a local wheel folder, a mirror, the PyTorch CPU index of a CI
workflow). So the sources are read from pip (`pip config list`, which includes PIP_* environment variables)
and passed to uv explicitly, in pip's order: pip's index first, then its extra indexes, plus its find-links.

    python3 scripts/install.py [--venv .venv] [--pip-only] [--print-uv-command]
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UV_VERSION = "0.13.9"  # pinned like everything else; bootstrapped into the venv with pip
PYPI = "https://pypi.org/simple"
# What the project installs: the package with its dev tools, every transitive package pinned.
TARGET = ["-c", "constraints.txt", "-e", ".[dev]"]
SOURCE_OPTIONS = ("index-url", "extra-index-url", "find-links", "cert")


def pip_sources(python: str) -> dict[str, list[str]]:
    """pip's package sources as pip itself resolves its configuration files and PIP_* variables."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    return parse_pip_config(listing)


def parse_pip_config(listing: str) -> dict[str, list[str]]:
    """`pip config list` lines (`global.find-links='/opt/wheels'`, `:env:.extra-index-url='a b'`) -> the
    values pip uses for index-url, extra-index-url, find-links and cert. As in pip, a PIP_* variable
    (`:env:`) overrides the files' [install] section, which overrides their [global] one."""
    rank = {":env:": 2, "install": 1, "global": 0}
    chosen: dict[str, tuple[int, list[str]]] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, _, option = key.rpartition(".")
        if not sep or option not in SOURCE_OPTIONS or section not in rank:
            continue
        try:
            value = ast.literal_eval(raw)
        except (SyntaxError, ValueError):
            value = raw.strip("'\"")
        if option not in chosen or rank[section] >= chosen[option][0]:
            chosen[option] = (rank[section], str(value).split())
    return {option: chosen.get(option, (0, []))[1] for option in SOURCE_OPTIONS}


def uv_source_args(sources: dict[str, list[str]]) -> list[str]:
    """uv options for the same sources. uv takes a version from the first index that has it, where pip
    compares every index's files; listing pip's main index first keeps pip's choice where a mirror holds
    fewer files of a release (one wheel of several)."""
    indexes = [sources["index-url"][-1] if sources["index-url"] else PYPI, *sources["extra-index-url"]]
    args = []
    for url in dict.fromkeys(indexes):
        args += ["--index", url]
    for location in sources["find-links"]:
        args += ["--find-links", location]
    # A pinned version may live on a later index only (torch's CPU build): look at all of them.
    return [*args, "--index-strategy", "unsafe-best-match"]


def run(cmd: list[str], env: dict[str, str] | None = None) -> int:
    print("+ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode


def install(venv: Path, pip_only: bool) -> int:
    started = time.perf_counter()
    python = str(venv / "bin" / "python")
    if not Path(python).exists() and run([sys.executable, "-m", "venv", str(venv)]) != 0:
        return 1
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = False
    if not pip_only and run([*pip, f"uv=={UV_VERSION}"]) == 0:
        sources = pip_sources(python)
        env = dict(os.environ)
        if sources["cert"]:  # the certificate bundle pip is told to trust, for uv too
            env.setdefault("SSL_CERT_FILE", sources["cert"][-1])
        # Compiled now, as pip does: with PYTHONDONTWRITEBYTECODE set (CI, containers) an uncompiled venv
        # would recompile on every import, and each `trackflow` command would start twice as slowly.
        uv = [str(venv / "bin" / "uv"), "pip", "install", "--quiet", "--compile-bytecode", "--python", python]
        done = run([*uv, *uv_source_args(sources), *TARGET], env) == 0
        if not done:
            print("uv could not install the pinned set; falling back to pip", file=sys.stderr, flush=True)
    if not done and run([*pip, *TARGET]) != 0:
        return 1
    print(f"installed into {venv} in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv")
    parser.add_argument("--pip-only", action="store_true", help="skip uv (the fallback path, on purpose)")
    parser.add_argument(
        "--print-uv-command",
        action="store_true",
        help="print the uv command the install would run, with this machine's pip sources, and exit",
    )
    args = parser.parse_args(argv)
    venv = args.venv if args.venv.is_absolute() else REPO / args.venv
    if args.print_uv_command:
        python = str(venv / "bin" / "python") if (venv / "bin" / "python").exists() else sys.executable
        print(shlex.join(["uv", "pip", "install", *uv_source_args(pip_sources(python)), *TARGET]))
        return 0
    return install(venv, args.pip_only)


if __name__ == "__main__":
    sys.exit(main())
