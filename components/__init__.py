"""The work of the pipeline: typed functions and small classes, no Prefect, no hidden I/O."""

import os

# OpenMP (LightGBM, XGBoost, scikit-learn, PyTorch) spin-waits by default: when two fits share the cores
# (parallel model families, or any other busy process), every barrier burns a whole time slice and a
# 5-second fit takes minutes (measured 155 s instead of 5 s on 2 cores). Passive waiting removes that.
# It must be set before those libraries load their OpenMP runtime, which happens on import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
