"""What every section shares: the run context, measured child processes, statistics and the results files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trackflow.stages.common import git_commit

REPO = Path(__file__).resolve().parents[1]
# A child that runs longer than this is stuck, not slow: the suite never fails on time otherwise.
DEFAULT_CHILD_TIMEOUT_S = 3 * 3600


class BenchError(RuntimeError):
    """A section could not be measured (a failed child, a missing input); the message says why."""


@dataclass(frozen=True)
class Context:
    """One run of the suite.

    `work` holds the temporary project roots: `base` (a copy of the repository with the raw data), `flow`
    (the training flow run; later sections reuse it), `overhead-flow` and `direct` (the overhead pair, with
    a light budget; the DVC section reuses `direct`). `results` holds one JSON file per section
    and the child logs.
    """

    repo: Path
    work: Path
    results: Path
    repeats: int = 3
    quick: bool = False
    tracks_csv: Path | None = None
    audio_dir: Path | None = None
    child_timeout_s: float = DEFAULT_CHILD_TIMEOUT_S
    # Sections that may reuse an already trained project root instead of the suite's own training run.
    project: Path | None = None

    @property
    def base_root(self) -> Path:
        return self.work / "base"

    @property
    def flow_root(self) -> Path:
        return self.project or self.work / "flow"

    @property
    def direct_root(self) -> Path:
        return self.work / "direct"

    @property
    def overhead_flow_root(self) -> Path:
        return self.work / "overhead-flow"

    @property
    def prefect_home(self) -> Path:
        return self.work / "prefect-home"

    @property
    def logs(self) -> Path:
        return self.results / "logs"


def say(message: str) -> None:
    """Progress on stdout, as it happens."""
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- statistics ---
def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (n = 1: all three are that one value)."""
    if not values:
        raise ValueError("no measurements to summarise")
    clean = [float(v) for v in values]
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
        "values": clean,
    }


# --- child processes ---
@dataclass(frozen=True)
class Measured:
    """A finished child process, as its parent saw it."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system CPU of the child and of its descendants it waited for
    max_rss_mb: float  # ru_maxrss: the peak resident memory of the largest process of that tree
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def code_root(ctx: Context, root: Path) -> Path:
    """Whose code a child imports: the project root's own copy when it has one (the suite's roots), else the
    checkout's (a trained project given with --project may hold only data and parameters)."""
    return root if (root / "bench" / "child.py").is_file() and (root / "trackflow").is_dir() else ctx.repo


def child_env(ctx: Context, root: Path) -> dict[str, str]:
    """The environment of every child: the project's code first, isolated stores, passive OpenMP."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "OMP_WAIT_POLICY": "PASSIVE",  # see components/__init__.py: spinning threads starve 2 cores
            "PYTHONPATH": str(code_root(ctx, root)),  # also for the `trackflow` commands dvc runs
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PREFECT_HOME": str(ctx.prefect_home),  # an ephemeral API with its own database
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
        }
    )
    # Each project root uses its own sqlite MLflow store and the ephemeral Prefect API: nothing of the
    # user's is read or written.
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "TRACKS_CSV"):
        env.pop(name, None)
    return env


def measure(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path, timeout_s: float) -> Measured:
    """Run `cmd`, its output to `log`; the wall time, CPU time and peak memory come from wait4()."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        started = time.perf_counter()
        # Own process group: on timeout the whole tree is stopped, and leftovers are cleaned after exit.
        process = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            _signal_group(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, stop)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C reaches only this process: its own session would run on without it
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        _signal_group(process.pid, signal.SIGTERM)  # e.g. a server the child started and did not stop
    if timed_out.is_set():
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"\n[bench] killed after {timeout_s:.0f} s (--child-timeout)\n")
    return Measured(
        returncode=process.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        log=log,
    )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class JobResult:
    payload: dict[str, Any]
    process: Measured

    def as_dict(self) -> dict[str, Any]:
        return {
            "process_wall_s": self.process.wall_s,
            "process_cpu_s": self.process.cpu_s,
            "peak_rss_mb": self.process.max_rss_mb,
            **self.payload,
        }


def run_job(ctx: Context, name: str, target: str, args: Mapping[str, Any], root: Path) -> JobResult:
    """Run `module:function(**args)` in a fresh Python process with `root` as its project; the function
    returns a JSON-able dict with its own timings. Raises BenchError with the log's tail if it fails."""
    ctx.logs.mkdir(parents=True, exist_ok=True)
    args_file = ctx.logs / f"{name}.args.json"
    out_file = ctx.logs / f"{name}.out.json"
    args_file.write_text(json.dumps(dict(args), indent=2, default=str), encoding="utf-8")
    out_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.child", target, str(args_file), str(out_file)]
    measured = measure(cmd, root, child_env(ctx, root), ctx.logs / f"{name}.log", ctx.child_timeout_s)
    if measured.returncode != 0 or not out_file.exists():
        raise BenchError(
            f"{name} ({target}) failed with exit code {measured.returncode}; log "
            f"{measured.log}:\n{measured.tail()}"
        )
    return JobResult(json.loads(out_file.read_text(encoding="utf-8")), measured)


def run_command(ctx: Context, name: str, cmd: Sequence[str], root: Path, check: bool = True) -> Measured:
    """A command (dvc, git, trackflow) in `root`, measured like a job."""
    measured = measure(cmd, root, child_env(ctx, root), ctx.logs / f"{name}.log", ctx.child_timeout_s)
    if check and measured.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed with exit code {measured.returncode}:\n{measured.tail()}")
    return measured


def tool(name: str) -> str:
    """A console script of this environment (dvc, trackflow), next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"`{name}` is not installed in this environment ({sys.executable})")
    return found


# --- results files ---
def host_cpu_ticks() -> dict[str, int] | None:
    """The machine's CPU time counters since boot (Linux /proc/stat), None elsewhere. On a virtual machine
    `steal` is the time the hypervisor gave our virtual CPUs to other guests: wall times measured while it
    is high say more about the host than about this code."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()
    except OSError:
        return None
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    if fields[0] != "cpu" or len(fields) < 1 + len(names):
        return None
    return dict(zip(names, (int(v) for v in fields[1 : 1 + len(names)]), strict=True))


def steal_share(before: Mapping[str, int] | None, after: Mapping[str, int] | None) -> float | None:
    """The share of the machine's CPU time the hypervisor took between two host_cpu_ticks() readings."""
    if not before or not after:
        return None
    total = sum(after[k] - before[k] for k in after)
    return (after["steal"] - before["steal"]) / total if total > 0 else None


def write_result(ctx: Context, section: str, status: str, seconds: float, data: Mapping[str, Any]) -> Path:
    """results/<section>.json: what was measured, when, on which commit, in which mode."""
    payload = {
        "section": section,
        "status": status,  # ok, error or skipped
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(ctx.repo, digits=12),
        "seconds": round(seconds, 2),
        "data": dict(data),
    }
    ctx.results.mkdir(parents=True, exist_ok=True)
    target = ctx.results / f"{section}.json"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def read_results(results: Path) -> dict[str, dict[str, Any]]:
    """Every section's result file in `results`, by section name; an unreadable file names itself."""
    found: dict[str, dict[str, Any]] = {}
    if not results.is_dir():
        return found
    for path in sorted(results.glob("*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}: not a valid results file ({exc})") from exc
        if not isinstance(payload, dict) or "section" not in payload or "data" not in payload:
            raise BenchError(f"{path}: not a benchmark results file (no 'section'/'data')")
        found[payload["section"]] = payload
    return found


Section = Callable[[Context], dict[str, Any]]
