r"""JAX vs the PyTorch twin: RestoRect inference, one S2 step, IR-Flow.

Command (the README table; 2-CPU machine: about 15 minutes)::

  .venv/bin/python -m benchmarks.restorect_bench --json_out bench.json

Rows (same weights: the torch twins are built with ``torch_twin.from_flax``
from the Flax init; same inputs; same thread count):

* ``student4`` / ``student5``: deployed inference, batch ``--batch`` at
  ``--size``² — frozen ``Dl(lq)``, then the Interface (conditions, N Euler
  steps of both velocity MLPs, G without the decomposition head);
* ``teacher``: ``Dl(lq)``, ``Dh(gt)`` and the S1 teacher forward (encoders
  and G with the decomposition head) at ``--size``²;
* ``s2_train``: one S2 phase-2 training step at ``--train_size``², batch
  ``--train_batch`` — JAX: ``steps.make_stage_steps(config)['phase2']`` of
  ``configs/restorect_s2.py`` (loss, gradients, AdamW, EMA); torch:
  ``benchmarks/torch_s2_step.py`` (the twin's ``student_loss`` phase 2,
  backward, AdamW, EMA). Its max|Δ| is the first step's loss difference,
  from identical random draws;
* ``irflow``: IR-Flow ConditionalUNet, ``--irflow_steps`` Euler-1 steps at
  ``--size``² (``steps.irflow_predict``, BGR input as the reference);
  variant ``--irflow_variant``: ``small`` (nf 16, 9.0 M parameters) by
  default so it fits a 2-CPU machine; the reference model is ``default``
  (nf 64, 137.1 M parameters, about 16× the FLOPs): use it on a GPU.

RestoRect rows use ``--variant`` (default: the full 26 M-parameter model).
``--depthwise`` and ``--irflow_attention`` set the models' formulation
options (``restorect_jax/models/__init__.py``; default: the models'
defaults); ``--dense_conv`` swaps dense convolutions
(``benchmarks/op_variants.py``).
``--smoke`` runs the ``tiny`` variants at 32² with one repeat (the test).
On a GPU: a CUDA jaxlib and torch build, ``--device=cuda``;
``--dtype=bfloat16`` computes in bf16 (JAX: module ``dtype``; torch:
autocast), parameters stay float32.
"""

from __future__ import annotations

import shlex
import sys
import types

from absl import app
from absl import flags

from benchmarks import common
from benchmarks import op_variants
from benchmarks import workloads
from restorect_jax.models import irflow_unet
from restorect_jax.models import layers

ROWS = ('student4', 'student5', 'teacher', 's2_train', 'irflow')

_ROWS = flags.DEFINE_list('rows', list(ROWS), f'Rows to run, from {ROWS}.')
_VARIANT = flags.DEFINE_string(
    'variant', 'default', 'RestoRect variant (models.VARIANTS): default is '
    'the full 26 M-parameter model.')
_IRFLOW_VARIANT = flags.DEFINE_string(
    'irflow_variant', 'small', 'IR-Flow variant (models.IRFLOW_VARIANTS): '
    'small (nf 16) fits a CPU; default (nf 64) is the reference model.')
_IRFLOW_STEPS = flags.DEFINE_integer('irflow_steps', 4,
                                     'IR-Flow Euler-1 steps.')
_SIZE = flags.DEFINE_integer('size', 256, 'Inference image side.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Inference batch size.')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', 128,
                                   'Train-step patch side.')
_TRAIN_BATCH = flags.DEFINE_integer('train_batch', 1, 'Train-step batch.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per row (median).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed calls before timing.')
_THREADS = flags.DEFINE_integer(
    'threads', 0, 'CPUs for both frameworks (0: all this process may use).')
_DEVICE = flags.DEFINE_enum('device', 'auto', ['auto', 'cpu', 'cuda'],
                            'torch device (auto: cuda if available). JAX '
                            'uses its default backend.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'Compute dtype of both frameworks.')
_FRAMEWORKS = flags.DEFINE_list('frameworks', ['jax', 'torch'],
                                'Which sides to time: jax, torch.')
_GPU_PRECISION = flags.DEFINE_enum(
    'gpu_precision', 'tf32', ['tf32', 'highest'],
    'f32 matmul/conv math on a GPU, same for both (no effect on CPU).')
_TORCH_CHANNELS_LAST = flags.DEFINE_bool(
    'torch_channels_last', False, 'Run the torch twins in channels_last.')
_DENSE_CONV = flags.DEFINE_enum(
    'dense_conv', 'lax', list(op_variants.DENSE_CONVS),
    'JAX dense k×k convolutions: lax (the project\'s), im2col or taps '
    '(benchmarks/op_variants.py).')
_DEPTHWISE = flags.DEFINE_enum(
    'depthwise', 'auto', list(layers.DEPTHWISE_FORMULATIONS),
    'The RestoRect models\' depthwise option: auto (the default: '
    'shifted_vjp on CPU, shifted on GPU/TPU), shifted (autodiff), '
    'shifted_vjp (hand-written backward) or lax (grouped lax.conv); '
    'layers.depthwise_conv3x3.')
_IRFLOW_ATTENTION = flags.DEFINE_enum(
    'irflow_attention', 'folded', list(irflow_unet.ATTENTION_FORMULATIONS),
    'The IR-Flow model\'s attention option: folded (the default; '
    'normalisers applied to the context) or reference '
    '(irflow_unet.LinearAttention).')
_REMAT = flags.DEFINE_bool(
    'remat', False, 'Train step with config.remat (recompute activations in '
    'the backward pass), where the config has the key.')
_SMOKE = flags.DEFINE_bool('smoke', False,
                           'Tiny variants, 32² inputs, 1 repeat (tests).')
_JSON_OUT = flags.DEFINE_string('json_out', None,
                                'Also write the results as JSON here.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of weights and inputs.')


def options_from_flags() -> types.SimpleNamespace:
  """Flag values after ``--smoke``; checks rows and frameworks."""
  unknown = set(_ROWS.value) - set(ROWS)
  if unknown:
    raise app.UsageError(f'Unknown --rows {sorted(unknown)}; known: {ROWS}.')
  frameworks = set(_FRAMEWORKS.value)
  if not frameworks or frameworks - {'jax', 'torch'}:
    raise app.UsageError('--frameworks takes jax and/or torch.')
  a = types.SimpleNamespace(
      rows=list(_ROWS.value), frameworks=frameworks, variant=_VARIANT.value,
      irflow_variant=_IRFLOW_VARIANT.value, irflow_steps=_IRFLOW_STEPS.value,
      size=_SIZE.value, batch=_BATCH.value, train_size=_TRAIN_SIZE.value,
      train_batch=_TRAIN_BATCH.value, repeats=_REPEATS.value,
      warmup=_WARMUP.value, dtype=_DTYPE.value, seed=_SEED.value,
      remat=_REMAT.value, channels_last=_TORCH_CHANNELS_LAST.value,
      depthwise=_DEPTHWISE.value, irflow_attention=_IRFLOW_ATTENTION.value)
  if _SMOKE.value:
    a.variant, a.irflow_variant = 'tiny', 'tiny'
    a.size, a.train_size, a.repeats, a.warmup = 32, 32, 1, 1
  return a


def build_workload(name: str, setup: workloads.Setup | None,
                   a: types.SimpleNamespace,
                   torch_device: str | None) -> common.Workload:
  """The workload of one row."""
  if name in ('student4', 'student5'):
    return workloads.student_workload(setup, int(name[-1]), size=a.size,
                                      batch=a.batch)
  if name == 'teacher':
    return workloads.teacher_workload(setup, size=a.size, batch=a.batch)
  if name == 's2_train':
    return workloads.s2_train_workload(setup, size=a.train_size,
                                       batch=a.train_batch)
  return workloads.irflow_workload(
      variant=a.irflow_variant, size=a.size, batch=a.batch,
      num_steps=a.irflow_steps, dtype=a.dtype, torch_device=torch_device,
      channels_last=a.channels_last, seed=a.seed,
      attention=a.irflow_attention)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  a = options_from_flags()
  threads = common.pin_cpu_threads(_THREADS.value)
  torch_device = None
  if 'torch' in a.frameworks:
    torch_device = common.torch_setup(threads, _DEVICE.value)
  common.set_gpu_precision(_GPU_PRECISION.value, torch_device)
  setup = None
  if set(a.rows) - {'irflow'}:
    setup = workloads.Setup(a.variant, a.dtype, torch_device, a.seed,
                            a.channels_last, a.remat, a.depthwise)
  rows = []
  with op_variants.dense_conv(_DENSE_CONV.value):
    for name in a.rows:
      w = build_workload(name, setup, a, torch_device)
      rows.append(common.run_workload(w, frameworks=a.frameworks,
                                      device=torch_device, warmup=a.warmup,
                                      repeats=a.repeats))
      del w
      print(common.markdown_table(rows[-1:]).splitlines()[-1], flush=True)
  info = common.machine_info(threads, torch_device)
  info.update(variant=a.variant, irflow_variant=a.irflow_variant,
              dtype=a.dtype, repeats=a.repeats, warmup=a.warmup,
              remat=a.remat, torch_channels_last=a.channels_last,
              dense_conv=_DENSE_CONV.value, depthwise=a.depthwise,
              depthwise_resolved=layers.resolve_depthwise(a.depthwise),
              irflow_attention=a.irflow_attention)
  command = ' '.join(['python -m benchmarks.restorect_bench'] +
                     [shlex.quote(x) for x in sys.argv[1:]])
  common.report(rows, info, command, _JSON_OUT.value)


if __name__ == '__main__':
  app.run(main)
