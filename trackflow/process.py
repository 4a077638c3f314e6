"""Settings of the process itself, applied by the entry points (the `trackflow` command, the flows package)
before any numeric library loads; nothing in components/ or the stages sets them.

OpenMP (LightGBM, XGBoost, scikit-learn, PyTorch) spin-waits by default: when two fits share the cores
(families tuned side by side, or any other busy process), every barrier burns a whole time slice and a
5-second fit takes minutes (measured 155 s instead of 5 s on 2 cores). Passive waiting removes that. OpenMP
reads the variable once, when its runtime loads, which happens on import of those libraries; child processes
(DVC's stage commands, audio workers) inherit it from the environment.
"""

from __future__ import annotations

import os

PROCESS_ENVIRONMENT = {
    "OMP_WAIT_POLICY": "PASSIVE",
    # Plots are files, never windows: matplotlib reads its backend when it is first imported.
    "MPLBACKEND": "Agg",
}


def configure_process() -> dict[str, str]:
    """Set what the user has not set already; returns the values in force."""
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PROCESS_ENVIRONMENT}
