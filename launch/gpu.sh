#!/usr/bin/env bash
# Usage: launch/gpu.sh --config configs/restorect_s1.py:dataset=lol_v1 \
#          --workdir runs/s1_lol_v1 [--config.key=value ...]
# One host, all its GPUs: JAX uses every visible GPU in one process.
# Needs a CUDA build of JAX (pip install -U "jax[cuda12]"). Multi-host
# Slurm and TPU-pod launchers come with the scale issue (#7).
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
exec python -m restorect_jax.main "$@"
