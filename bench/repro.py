"""`dvc repro` of the training chain in the direct run's project root: with nothing changed, then after
touching one parameter.

The lock file is recorded with `dvc commit` over the outputs the direct training run (the overhead pair's,
light budget) wrote: the same stage functions that dvc.yaml's `trackflow <stage>` commands call, so another
training run is not needed to bring the pipeline up to date. The targets are the training
chain, `register@<task>` and everything upstream; other pipelines in dvc.yaml (discovery) are not part of it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.format import megabytes, ranged, seconds, table, yes_no
from bench.harness import BenchError, Context, child_env, run_command, say, spread, tool

# The parameter touched: it feeds the three evaluate stages; downstream, only what their changed outputs feed.
PARAM_SECTION, PARAM_KEY = "evaluate", "hit_min_precision"
_RAN = re.compile(r"Running stage '([^']+)'")
_EDGE = re.compile(r'"([^"]+)"\s*->\s*"([^"]+)"')


def ran_stages(output: str) -> list[str]:
    return list(dict.fromkeys(_RAN.findall(output)))


def downstream(stages: set[str], edges: list[tuple[str, str]]) -> set[str]:
    """`stages` and every stage that depends on them, directly or not."""
    return _closure(stages, edges)


def upstream(stages: set[str], edges: list[tuple[str, str]]) -> set[str]:
    """`stages` and every stage they depend on, directly or not."""
    return _closure(stages, [(down, up) for up, down in edges])


def _closure(start: set[str], edges: list[tuple[str, str]]) -> set[str]:
    found = set(start)
    changed = True
    while changed:
        changed = False
        for source, target in edges:
            if source in found and target not in found:
                found.add(target)
                changed = True
    return found


def training_targets(root: Path) -> list[str]:
    """`register@<task>` for every task of params.yaml: the end of the training chain."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    return [f"register@{task}" for task in params["train"]["tasks"]]


def touch_parameter(params_file: Path) -> tuple[float, float]:
    """Change evaluate.hit_min_precision in place (one line, the file otherwise untouched)."""
    text = params_file.read_text(encoding="utf-8")
    pattern = re.compile(rf"^([ \t]+{PARAM_KEY}:[ \t]*)([0-9.]+)[ \t]*$", re.MULTILINE)
    match = pattern.search(text)
    if match is None:
        raise BenchError(f"{params_file}: no `{PARAM_KEY}:` line under `{PARAM_SECTION}:` to change")
    old = float(match.group(2))
    new = round(old + 0.1, 2) if old + 0.1 < 1 else round(old - 0.1, 2)
    params_file.write_text(pattern.sub(rf"\g<1>{new}", text, count=1), encoding="utf-8")
    return old, new


def _capture(ctx: Context, cmd: list[str], root: Path) -> str:
    """stdout of an unmeasured helper command (status, dag)."""
    done = subprocess.run(
        cmd, cwd=root, env=child_env(ctx, root), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.direct_root
    if not (root / "metrics").is_dir() or not (root / "dvc.yaml").is_file():
        raise BenchError(f"{root} has no trained project: run the training section first")
    dvc = tool("dvc")
    targets = training_targets(root)
    edges = _EDGE.findall(_capture(ctx, [dvc, "dag", "--dot"], root))
    chain = upstream(set(targets), edges)
    commit = run_command(ctx, "dvc-commit", [dvc, "commit", "--force", "--with-deps", *targets], root)
    say(f"dvc commit over the direct run's outputs ({len(chain)} stages): {commit.wall_s:.1f} s")

    noop_runs = []
    for i in range(ctx.repeats):
        measured = run_command(ctx, f"dvc-repro-noop-{i + 1}", [dvc, "repro", *targets], root)
        output = measured.log.read_text(encoding="utf-8", errors="replace")
        noop_runs.append(
            {
                "wall_s": measured.wall_s,
                "peak_rss_mb": measured.max_rss_mb,
                "ran": ran_stages(output),
                "up_to_date": "up to date" in output.lower(),
            }
        )
    noop = spread([r["wall_s"] for r in noop_runs])
    say(f"dvc repro, nothing changed: {noop['median']:.2f} s (median of {noop['n']})")

    old, new = touch_parameter(root / "params.yaml")
    status = json.loads(_capture(ctx, [dvc, "status", "--json", "--with-deps", *targets], root) or "{}")
    flagged = set(status)
    allowed = downstream(flagged, edges) & chain
    measured = run_command(ctx, "dvc-repro-param", [dvc, "repro", *targets], root)
    ran = ran_stages(measured.log.read_text(encoding="utf-8", errors="replace"))
    say(f"dvc repro after {PARAM_SECTION}.{PARAM_KEY} {old} -> {new}: {measured.wall_s:.1f} s, ran {ran}")
    return {
        "commit_s": commit.wall_s,
        "targets": targets,
        "noop": {**noop, "runs": noop_runs},
        "param": {
            "name": f"{PARAM_SECTION}.{PARAM_KEY}",
            "old": old,
            "new": new,
            "wall_s": measured.wall_s,
            "peak_rss_mb": measured.max_rss_mb,
            "ran": ran,
            "changed_per_dvc_status": sorted(flagged),
            "allowed": sorted(allowed),
            "stages_total": len(chain),
            "only_affected": set(ran) <= allowed,
        },
    }


# --- its section of BENCHMARKS.md (bench/report.py composes them) ---
def render(data: Mapping[str, Any]) -> list[str]:
    noop, param = data["noop"], data["param"]
    return [
        f"`dvc repro {' '.join(data['targets'])}`: the training chain of `dvc.yaml` ({param['stages_total']} "
        "stages; other pipelines in it, such as discovery, are not part of these figures), in a git "
        "repository holding a copy of the project after the direct training run (light budget: see the "
        "overhead runs), which recorded its own stages in `dvc.lock` as every run of the pipeline does; "
        f"`dvc commit --force` over them took {seconds(data['commit_s'])}.",
        "",
        *table(
            ["run", "wall time", "peak memory", "stages run"],
            [
                [
                    f"`dvc repro`, nothing changed (x{noop['n']})",
                    ranged(noop),
                    megabytes(max(r["peak_rss_mb"] for r in noop["runs"])),
                    ", ".join(sorted({s for r in noop["runs"] for s in r["ran"]})) or "none (up to date)",
                ],
                [
                    f"`dvc repro` after `{param['name']}` {param['old']} → {param['new']} (1 run)",
                    seconds(param["wall_s"]),
                    megabytes(param["peak_rss_mb"]),
                    ", ".join(f"`{s}`" for s in param["ran"]),
                ],
            ],
        ),
        "",
        f"`dvc status` flagged {', '.join(f'`{s}`' for s in param['changed_per_dvc_status']) or 'nothing'}; "
        f"with everything downstream of them, {len(param['allowed'])} of {param['stages_total']} stages may "
        f"rerun. Only those reran: {yes_no(param['only_affected'])}.",
    ]
