r"""Compile time of one RestoRect train step (issue 16: target ≤ 20 s).

Builds the S1 teacher step or the S2 phase-2 step of ``configs/`` at full
width (random weights, a 1×128² batch as in ``restorect_bench``), then
times ``jax.jit(step).lower(...)`` and ``.compile()`` separately, with XLA
compiler options given as ``name=value`` pairs; ``--run`` also times calls
of the compiled step, so an option that compiles faster can be checked for
what it costs at run time. Each configuration runs in a fresh process (no
in-process or persistent compilation cache)::

  .venv/bin/python -m benchmarks.compile_bench --stages=s1,s2 \
      --options=defaults,xla_cpu_use_fusion_emitters=false --run=2

``--options`` is a comma-separated list of option sets: ``defaults`` is
XLA's defaults, ``+`` joins several options in one set.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
import time

from absl import app
from absl import flags

from benchmarks import common
from restorect_jax.models import layers

_STAGES = flags.DEFINE_list('stages', ['s1', 's2'], 'Stages: s1, s2.')
_OPTIONS = flags.DEFINE_list(
    'options', ['defaults', 'xla_cpu_use_fusion_emitters=false'],
    'Option sets ("defaults": none; "+" joins options in a set).')
_SIZE = flags.DEFINE_integer('size', 128, 'Patch side.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Batch size.')
_VARIANT = flags.DEFINE_string('variant', 'default', 'RestoRect variant.')
_RUN = flags.DEFINE_integer('run', 0, 'Timed calls after compiling.')
_DEPTHWISE = flags.DEFINE_enum(
    'depthwise', 'auto', list(layers.DEPTHWISE_FORMULATIONS),
    'The RestoRect models\' depthwise option (layers.depthwise_conv3x3).')
_CHILD = flags.DEFINE_string('child', '', 'Internal: "stage|options".')

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_options(text: str) -> dict[str, object]:
  out = {}
  for item in filter(None, text.split('+')):
    if item == 'defaults':
      continue
    name, _, value = item.partition('=')
    low = value.lower()
    out[name] = (low == 'true') if low in ('true', 'false') else (
        int(value) if value.lstrip('-').isdigit() else value)
  return out


def _step_and_args(stage: str, options: dict[str, object]):
  """The jitted train step of ``stage`` and its arguments."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import workloads  # pylint: disable=g-import-not-at-top
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  from restorect_jax import methods  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import train_step  # pylint: disable=g-import-not-at-top
  from restorect_jax.core.train_state import TrainState  # pylint: disable=g-import-not-at-top
  config = config_lib.load(
      os.path.join(_REPO, 'configs', f'restorect_{stage}.py'),
      'dataset=lol_v1')
  config.model.variant = _VARIANT.value
  config.model.depthwise = _DEPTHWISE.value
  method = methods.for_config(config)
  models = method.models(config)
  # The benchmarks' random frozen DecomNets (and S2's random teacher).
  setup = workloads.Setup(_VARIANT.value, 'float32', None, 0, False)
  frozen = dict(setup.frozen)
  if stage == 's2':
    frozen['teacher'] = setup.variables('teacher')['params']
  params = method.init(config, models, frozen)
  tx, schedules = method.optimizers(config, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(0))
  phases = method.phases(config, method.models(config, training=True),
                         schedules)
  name = 'phase2' if stage == 's2' else method.phase(config, 0)
  step = train_step.jit_step(train_step.make_train_step(phases[name]),
                             compiler_options=options or None)
  rng = jax.random.split(jax.random.PRNGKey(1), 2)
  shape = (_BATCH.value, _SIZE.value, _SIZE.value, 3)
  batch = {'lq': jax.random.uniform(rng[0], shape) * 0.2,
           'gt': jax.random.uniform(rng[1], shape)}
  return f'{stage} {name}', step, (state, batch, frozen)


def _child(spec: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  stage, _, text = spec.partition('|')
  options = _parse_options(text)
  label, step, args = _step_and_args(stage, options)
  t0 = time.perf_counter()
  lowered = step.lower(*args)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  runs = []
  state, batch, frozen = args
  for _ in range(_RUN.value):
    t = time.perf_counter()
    state, m = compiled(state, batch, frozen)
    jax.block_until_ready((state, m))
    runs.append(time.perf_counter() - t)
  print(json.dumps(dict(
      step=label, options=text, lower_s=t1 - t0,
      compile_s=t2 - t1, hlo_chars=len(lowered.as_text()),
      run_s=statistics.median(runs) if runs else None)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _CHILD.value:
    _child(_CHILD.value)
    return
  print(f'command: {shlex.join(sys.argv)}')
  print(f'variant {_VARIANT.value}, depthwise {_DEPTHWISE.value}, '
        f'batch {_BATCH.value}×{_SIZE.value}², '
        f'{os.cpu_count()} CPUs')
  print('| step | XLA options | lower s | compile s | StableHLO chars | '
        f'run s (median of {_RUN.value}) |')
  print('|---|---|---|---|---|---|')
  for stage in _STAGES.value:
    for text in _OPTIONS.value:
      r = common.run_child(
          'compile_bench',
          [f'--child={stage}|{text}', f'--size={_SIZE.value}',
           f'--batch={_BATCH.value}', f'--variant={_VARIANT.value}',
           f'--run={_RUN.value}', f'--depthwise={_DEPTHWISE.value}'],
          f'{stage} {text!r}', env={'JAX_ENABLE_COMPILATION_CACHE': 'false'})
      run = '-' if r['run_s'] is None else f'{r["run_s"]:.2f}'
      print(f'| {r["step"]} | {r["options"]} | {r["lower_s"]:.1f} | '
            f'{r["compile_s"]:.1f} | {r["hlo_chars"]:,} | {run} |',
            flush=True)


if __name__ == '__main__':
  app.run(main)
