r"""Per-op profile of one benchmark row: XLA thunks vs torch operators.

Command (what benchmarks/README.md's profiles came from)::

  .venv/bin/python -m benchmarks.profile_ops --rows=s2_train --threads=1

Takes the rows and flags of ``benchmarks.restorect_bench``. JAX: the
compiled program runs ``--calls`` times under ``jax.profiler.trace``; the
XLA:CPU thunk events are summed per HLO instruction, which is mapped to its
``op_name`` metadata (the Flax module path and the jax primitive, e.g.
``G/encoder_level1.0/ffn/dwconv/mul``; backward ops carry ``transpose(...)``)
and grouped by module path (``--depth`` components) and by primitive.
torch: ``torch.profiler`` over the same number of calls, self CPU time per
operator (convolutions split by kernel size and groups).
"""

from __future__ import annotations

from absl import app
from absl import flags

from benchmarks import common
from benchmarks import restorect_bench
from benchmarks import workloads
from benchmarks import xla_profile

_CALLS = flags.DEFINE_integer('calls', 2, 'Profiled calls per framework.')
_TOP = flags.DEFINE_integer('top', 20, 'Rows per table.')
_DEPTH = flags.DEFINE_integer(
    'depth', 3, 'Module-path components kept when grouping JAX time.')

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  a = restorect_bench.options_from_flags()
  threads = common.pin_cpu_threads(flags.FLAGS.threads)
  torch_device = None
  if 'torch' in a.frameworks:
    torch_device = common.torch_setup(threads, flags.FLAGS.device)
  setup = None
  if set(a.rows) - {'irflow'}:
    setup = workloads.Setup(a.variant, a.dtype, torch_device, a.seed,
                            a.channels_last, a.remat, a.depthwise)
  print(f'threads {threads}, variant {a.variant}, calls {_CALLS.value}')
  for name in a.rows:
    w = restorect_bench.build_workload(name, setup, a, torch_device)
    print(xla_profile.report(w, frameworks=a.frameworks, device=torch_device,
                             calls=_CALLS.value, top=_TOP.value,
                             depth=_DEPTH.value), flush=True)


if __name__ == '__main__':
  app.run(main)
