r"""Does the training loop wait for the host? Loop steps/s vs the bare step.

Runs ``train.train_and_evaluate`` (the real loop: data pipeline, progressive
crops, prefetch to device, metrics kept on device and fetched at log
cadence, async Orbax checkpoints) on the bundled demo set, and the same
jitted train step called back to back on the same (pre-sharded) batches
with nothing else; prints both rates and their ratio (target ≥ 0.95 on the
CPU with the runlocal model, issue 16).

  .venv/bin/python -m benchmarks.loop_bench --config=configs/restorect_s1.py \
      --arg=dataset=demo,runlocal --steps=40 --log_every=10

Timing: the loop's clock starts when its first metrics fetch returns (after
compilation and the first ``log_every`` steps) and stops after the last
fetch; the bare step is timed over the same number of steps after one
warm-up call, ended by ``block_until_ready``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from unittest import mock

from absl import app
from absl import flags

_CONFIG = flags.DEFINE_string('config', 'configs/restorect_s1.py',
                              'Config file.')
_ARG = flags.DEFINE_string('arg', 'dataset=demo,runlocal', 'Config args.')
_STEPS = flags.DEFINE_integer('steps', 40, 'Timed steps.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 10, 'Metrics fetch cadence.')
_CKPT_EVERY = flags.DEFINE_integer('ckpt_every', 0, 'Checkpoint cadence '
                                   '(0: only the final save).')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Runs of each; medians.')


def _config():
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.load(_CONFIG.value, _ARG.value)
  n = _LOG_EVERY.value + _STEPS.value
  c.total_steps = n
  c.input.stage_steps = (n,)
  c.input.mini_batch_sizes = (c.input.batch_size,)
  c.input.gt_sizes = (c.input.patch_size,)
  c.log_training_steps = _LOG_EVERY.value
  c.ckpt_steps = _CKPT_EVERY.value
  c.eval_steps = 0
  if 'periods' in c.get('schedule', {}):
    c.schedule.periods = (n,)
    c.schedule.restart_weights = (1.0,)
    c.schedule.eta_mins = (1e-5,)
  return c


def loop_rate(config) -> float:
  """Steps/s of the real loop between its first and last metrics fetch."""
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
  stamps = []
  real = train._log_and_check  # pylint: disable=protected-access

  def timed(*a, **kw):
    real(*a, **kw)
    stamps.append(time.perf_counter())

  with mock.patch.object(train, '_log_and_check', timed), \
      mock.patch.object(sources, 'eval_records', lambda *a: None):
    train.train_and_evaluate(config, tempfile.mkdtemp())
  # stamps[0]: after step log_every (compiled, warm); stamps[-1]: the end.
  return _STEPS.value / (stamps[-1] - stamps[0])


def bare_rate(config) -> float:
  """Steps/s of the same jitted step called back to back."""
  import jax  # pylint: disable=g-import-not-at-top
  from restorect_jax import methods  # pylint: disable=g-import-not-at-top
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import sharding  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import train_step  # pylint: disable=g-import-not-at-top
  from restorect_jax.core.train_state import TrainState  # pylint: disable=g-import-not-at-top
  from restorect_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
  workdir = tempfile.mkdtemp()
  method = methods.for_config(config)
  mesh = train.make_mesh(config)
  inp = config.input
  it = iter(input_pipeline.train_dataset(
      sources.train_source(config, workdir), patch_size=inp.patch_size,
      batch_size=inp.batch_size, seed=config.seed))
  batches = [sharding.shard_batch({k: b[k] for k in ('lq', 'gt')}, mesh)
             for b in (next(it) for _ in range(_STEPS.value + 1))]
  it.close()
  frozen = method.frozen(config, workdir)
  params = method.init(config, method.models(config), frozen)
  tx, schedules = method.optimizers(config, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(0))
  shardings = train.state_shardings(config, state, mesh)
  state = sharding.place(state, shardings)
  frozen = jax.device_put(frozen, sharding.replicated(mesh))
  steps = train_step.jit_phases(
      method.phases(config, method.models(config, training=True), schedules),
      mesh=mesh, state_sharding=shardings, donate=True)
  step = steps[method.phase(config, 0)]
  state, m = step(state, batches[0], frozen)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for b in batches[1:]:
    state, m = step(state, b, frozen)
  jax.block_until_ready((state, m))
  return _STEPS.value / (time.perf_counter() - t0)


def main(argv):
  del argv
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import runtime  # pylint: disable=g-import-not-at-top
  config_lib.add_configs_root([f'--config={_CONFIG.value}'])
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  config = _config()
  loops, bares = [], []
  for _ in range(_REPEATS.value):
    loops.append(loop_rate(config))
    bares.append(bare_rate(config))
  loop, bare = statistics.median(loops), statistics.median(bares)
  print(f'config {_CONFIG.value}:{_ARG.value}, {_STEPS.value} timed steps, '
        f'metrics every {_LOG_EVERY.value}, batch {config.input.batch_size}'
        f'x{config.input.patch_size}², {os.cpu_count()} CPUs')
  print('| what | steps/s (median of %d) | runs |' % _REPEATS.value)
  print('|---|---|---|')
  print(f'| training loop | {loop:.3f} | {", ".join(f"{r:.3f}" for r in loops)} |')
  print(f'| bare jitted step | {bare:.3f} | {", ".join(f"{r:.3f}" for r in bares)} |')
  print(f'loop / bare = {loop / bare:.3f} (target >= 0.95)')


if __name__ == '__main__':
  app.run(main)
