"""The machine and the software the numbers were measured on: CPU, cores, memory, OS, Python, the versions of
the libraries that do the work, and the GPU (whether one is present; the training section says whether it
was used)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.harness import Context, run_job, say

LIBRARIES = (
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "catboost",
    "torch",
    "optuna",
    "mlflow",
    "prefect",
    "dvc",
    "great-expectations",
    "evidently",
    "librosa",
    "soundfile",
)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return None


def _gpus() -> list[str]:
    """GPUs torch can use (none on a CPU build), else what nvidia-smi lists."""
    try:
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if listed.returncode == 0:
            return [
                f"{line.strip()} (not visible to torch)"
                for line in listed.stdout.splitlines()
                if line.strip()
            ]
    return []


def environment_job() -> dict[str, Any]:
    """Child job: the facts, from the interpreter every other child uses."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
        torch_cuda = torch.version.cuda
    except ImportError:
        torch_threads, torch_cuda = None, None
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": sys.version.split()[0],
        "libraries": versions,
        "torch_threads": torch_threads,
        "torch_cuda_build": torch_cuda,
        "gpus": _gpus(),
    }


def run(ctx: Context) -> dict[str, Any]:
    data = run_job(ctx, "environment", "bench.environment:environment_job", {}, ctx.repo).payload
    say(
        f"environment: {data['cpu']}, {data['cores_usable']} cores, {data['memory_gb']:.1f} GB, GPUs "
        f"{data['gpus'] or 'none'}"
    )
    return data


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def render(data: Mapping[str, Any]) -> list[str]:
    libraries = ", ".join(f"{k} {v}" for k, v in data["libraries"].items() if v)
    memory = data["memory_gb"]
    return [
        f"- CPU: {data['cpu']}; {data['cores_usable']} usable cores ({data['cores_logical']} logical)",
        f"- Memory: {memory:.1f} GB" if memory else "- Memory: unknown",
        f"- OS: {data['os']}; Python {data['python']}; torch threads {data['torch_threads']}",
        f"- GPU: {', '.join(data['gpus']) if data['gpus'] else 'none'} (whether training used one: see the "
        "training section)",
        f"- Libraries: {libraries}",
    ]
