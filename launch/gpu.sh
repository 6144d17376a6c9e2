#!/usr/bin/env bash
# Usage: launch/gpu.sh --config configs/restorect_s1.py:dataset=lol_v1 \
#          --config.input.data_dir=/data/LOLdataset --workdir runs/s1 \
#          [--config.key=value ...] [--mode=eval]
#
# One host, N GPUs: one process drives every visible GPU; the train state is
# replicated and each global batch is split over a ('data',) mesh of all
# devices (restorect_jax/core/sharding.py), so batch sizes in the config are
# global and must divide by the GPU count. Every argument is passed to
# `python -m restorect_jax.main` unchanged.
#
# Environment:
#   GPUS=0,1,2,3   which GPUs to use (sets CUDA_VISIBLE_DEVICES; default all)
#   PYTHON=...     interpreter (default: .venv/bin/python if present)
#   XLA_PYTHON_CLIENT_PREALLOCATE  default false: memory grows on demand, so
#                  an evaluation or a second job can share the GPUs
#   XLA_FLAGS, JAX_COMPILATION_CACHE_DIR  passed through
#
# Needs a CUDA build of JAX: pip install -e . && pip install -U "jax[cuda12]".
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ -n "${GPUS:-}" ]]; then
  export CUDA_VISIBLE_DEVICES="${GPUS}"
fi
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; fi
fi
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
exec "${PYTHON}" -m restorect_jax.main "$@"
