#!/usr/bin/env bash
# Usage (from your machine, in the repository root, with gcloud set up):
#   TPU=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh \
#     --config configs/restorect_s1.py:dataset=lol_v1 \
#     --config.input.data_dir=/mnt/data/LOLdataset \
#     --workdir /mnt/shared/runs/s1_lol_v1
#
# TPU VM or TPU pod slice: copies this checkout to every worker, then runs
#   gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all \
#     --command "bash ~/restorect_jax/launch/tpu_vm.sh --on_worker ARGS"
# so every worker bootstraps the same venv (first run only: python3 -m venv
# ~/restorect_venv, pip install -e ~/restorect_jax and jax[tpu]) and runs
# the same `python -m restorect_jax.main ARGS`. On a multi-host slice
# (more than one worker endpoint in the TPU metadata) --distributed is
# added, so jax.distributed.initialize() finds the coordinator, process
# count and id from the TPU metadata server. Batch sizes in the config are
# global (over all TPU cores). The workdir must be one directory every
# worker can write at the same path (NFS / Filestore, or a bucket mounted
# with gcsfuse): logs and checkpoints use plain file I/O, not gs:// URLs.
# The data must be readable on every worker.
#
# Environment (local side):
#   TPU, ZONE        the TPU VM name and zone (required)
#   PROJECT          gcloud project (default: gcloud's current project)
#   COPY=0           skip copying the checkout (already on the workers)
# Environment (worker side, forwarded):
#   RESTORECT_PIP_EXTRA  extra pip packages for the venv (e.g. "tensorflow")
#   JAX_COMPILATION_CACHE_DIR, XLA_FLAGS
#
# Runs in the foreground; for long runs start it inside tmux/screen, or add
# `--config.key=value` overrides as for launch/gpu.sh.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

REMOTE_DIR='~/restorect_jax'
VENV="${HOME}/restorect_venv"

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
  usage
  exit 0
fi

# ---------------------------------------------------------------- worker --
if [[ "$1" == "--on_worker" ]]; then
  shift
  cd "$(dirname "$0")/.."
  if [[ ! -x "${VENV}/bin/python" ]]; then
    python3 -m venv "${VENV}"
    "${VENV}/bin/pip" install -q -U pip
    "${VENV}/bin/pip" install -q -e .
    "${VENV}/bin/pip" install -q -U "jax[tpu]" ${RESTORECT_PIP_EXTRA:-}
  fi
  # Worker endpoints of this slice, from the TPU metadata server.
  md='http://metadata.google.internal/computeMetadata/v1/instance/attributes'
  endpoints="$(curl -sf -H 'Metadata-Flavor: Google' \
    "${md}/worker-network-endpoints" || true)"
  n_workers="$(tr ',' '\n' <<<"${endpoints}" | grep -c . || true)"
  extra=()
  if [[ "${n_workers:-0}" -gt 1 ]]; then
    extra+=(--distributed)
  fi
  echo "$(hostname): ${n_workers:-1} worker(s) in the slice"
  exec "${VENV}/bin/python" -m restorect_jax.main "${extra[@]}" "$@"
fi

# ----------------------------------------------------------------- local --
: "${TPU:?set TPU to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU zone}"
cd "$(dirname "$0")/.."
gc=(gcloud compute tpus tpu-vm)
proj=()
if [[ -n "${PROJECT:-}" ]]; then proj=(--project "${PROJECT}"); fi

if [[ "${COPY:-1}" != "0" ]]; then
  tarball="$(mktemp -d)/restorect_jax.tgz"
  # Tracked and untracked-but-not-ignored files: the working tree as is
  # (files deleted but still tracked are skipped).
  git ls-files -z --cached --others --exclude-standard \
    | tar -czf "${tarball}" --null --ignore-failed-read -T -
  "${gc[@]}" scp "${proj[@]}" --zone "${ZONE}" --worker=all "${tarball}" \
    "${TPU}:/tmp/restorect_jax.tgz"
  "${gc[@]}" ssh "${proj[@]}" "${TPU}" --zone "${ZONE}" --worker=all \
    --command "mkdir -p ${REMOTE_DIR} &&
               tar -xzf /tmp/restorect_jax.tgz -C ${REMOTE_DIR}"
fi

args="$(printf '%q ' "$@")"
fwd=""
for v in RESTORECT_PIP_EXTRA JAX_COMPILATION_CACHE_DIR XLA_FLAGS; do
  if [[ -n "${!v:-}" ]]; then fwd+="${v}=$(printf '%q' "${!v}") "; fi
done
exec "${gc[@]}" ssh "${proj[@]}" "${TPU}" --zone "${ZONE}" --worker=all \
  --command "${fwd}bash ${REMOTE_DIR}/launch/tpu_vm.sh --on_worker ${args}"
