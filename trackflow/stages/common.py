"""What the stages share: the parameters of a project, its run tags (params hash, git commit), the logger."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

from components.params import Params
from trackflow.config import load_params
from trackflow.paths import ProjectPaths

log = logging.getLogger("trackflow")


def params_for(paths: ProjectPaths) -> Params:
    return load_params(paths.params)


def params_hash(params: Params) -> str:
    blob = json.dumps(params.model_dump(by_alias=True, mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit(root: Path, digits: int | None = None) -> str:
    """The checkout's commit (the first `digits` hex digits when given), `-dirty` when tracked files
    changed, "unknown" outside git."""
    revision = ["git", "rev-parse", *([f"--short={digits}"] if digits else []), "HEAD"]
    try:
        commit = subprocess.run(
            revision, cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"
