"""``train_and_evaluate(config, workdir)``: the generic training loop.

Banner-sectioned like big_vision's train.py: method → mesh → data → models
and frozen nets → state (fresh or resumed) → jitted steps → loop with
logging, checkpoints and evaluation. Everything method-specific comes from
``restorect_jax.methods`` (``config.method``). Resumes automatically from the
latest checkpoint in ``<workdir>/checkpoints``.

The loop does not wait for the host: batches are put on the devices ahead
of the step that needs them, each step's metrics stay on the device until
the log cadence (or a checkpoint) fetches them together with the
non-finite check, and Orbax saves asynchronously. No checkpoint ever holds
a state reached through a non-finite loss.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections

from restorect_jax import methods
from restorect_jax.core import checkpointing
from restorect_jax.core import hot_loop
from restorect_jax.core import metric_writers
from restorect_jax.core import sharding
from restorect_jax.core import train_step
from restorect_jax.core.train_state import TrainState
from restorect_jax.data import input_pipeline
from restorect_jax.data import sources
from restorect_jax.evaluation.evaluator import Evaluator

NonFiniteLossError = hot_loop.NonFiniteLossError
Config = ml_collections.ConfigDict


def make_mesh(config: Config) -> jax.sharding.Mesh:
  """The training mesh of ``config.mesh`` (restorect_jax.core.sharding)."""
  m = config.get('mesh', {})
  return sharding.make_mesh(m.get('num_devices', 0), m.get('fsdp', 1))


def state_shardings(config: Config, state: TrainState,
                    mesh: jax.sharding.Mesh) -> TrainState:
  """Shardings of the train state: replicated, or FSDP on big leaves."""
  return sharding.param_shardings(
      state, mesh, fsdp_min_size=config.get('mesh', {}).get(
          'fsdp_min_size', sharding.FSDP_MIN_SIZE))


def predictor_for(method, config: Config, params: Any, frozen: Any,
                  info: dict[str, Any]):
  """The method's predictor of (local copies of) ``params``."""
  return method.predictor(config, sharding.local_copy(params), frozen, info)


def evaluate_and_log(method, config: Config, state_or_params: Any, frozen,
                     records, writer, step: int, workdir: str
                     ) -> dict[str, Any]:
  """Runs the config's evaluator on the weights evaluation uses; logs it."""
  params = state_or_params
  if isinstance(state_or_params, TrainState):
    params = (state_or_params.ema_params if method.eval_weights(config) ==
              'ema' else state_or_params.params)
  predictor = predictor_for(method, config, params, frozen,
                            {'source': os.path.abspath(workdir),
                             'step': step})
  evaluator = Evaluator.from_config(config,
                                    noise_sigma=config.evals.noise_sigma)
  res = evaluator.run(predictor, records, seed=config.seed)
  writer.write_scalars(step, {f'eval/{k}': v for k, v in res.flat().items()})
  grid = metric_writers.image_grid(
      [[o.lq, o.out] + ([o.gt] if o.gt is not None else [])
       for o in res.outputs])
  writer.write_images(step, {'eval_lq_out_gt': grid})
  logging.info('step %d eval (%s, %s weights, %d images): %s', step,
               method.name, method.eval_weights(config), res.n, res.flat())
  summary = {'step': step, 'method': method.name, 'n': res.n,
             'weights': method.eval_weights(config), **res.means}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'eval.json'), 'w') as f:
      json.dump(summary, f, indent=1)
  return summary


def _log_and_check(pending, writer, progress, ckpt) -> None:
  """Fetches the pending metrics (non-finite check) and logs the last."""
  fetched = pending.fetch(
      f'step {ckpt.latest_step()} in {ckpt.directory}'
      if ckpt.latest_step() is not None else 'none (nothing saved yet)')
  if fetched:
    step, m = fetched[-1]
    writer.write_scalars(step, {f'train/{k}': v for k, v in m.items()})
    progress(step, {'loss': m['loss'], 'lr': m['lr']})


def train_and_evaluate(config: Config, workdir: str) -> dict[str, Any]:
  """Trains the configured method in ``workdir``; returns the last eval.

  The result is ``{}`` when no evaluation ran (``config.eval_last=False``
  and no ``eval_steps`` reached).
  """
  method = methods.for_config(config)
  os.makedirs(workdir, exist_ok=True)
  writer = metric_writers.process_writer(workdir)
  writer.write_hparams(json.loads(config.to_json_best_effort()))

  # ---- mesh -----------------------------------------------------------------
  # Batch sizes are global; every progressive stage is checked here, before
  # anything runs, against the mesh's device count.
  inp = config.input
  mesh = make_mesh(config)
  sharding.log_mesh(mesh)
  sharding.check_progressive_batches(inp.batch_size, inp.mini_batch_sizes,
                                     mesh)

  # ---- data -----------------------------------------------------------------
  # Each process reads its own shard of the files and 1/process_count of
  # every global batch; shard_batch assembles the global arrays.
  train_iter = iter(input_pipeline.train_dataset(
      sources.train_source(config, workdir), patch_size=inp.patch_size,
      batch_size=sharding.process_batch_size(inp.batch_size),
      seed=config.seed, shard_index=jax.process_index(),
      shard_count=jax.process_count(), resize=inp.resize,
      resize_size=inp.resize_size, num_workers=inp.num_workers))
  local_minis = tuple(sharding.process_batch_size(min(int(m), inp.batch_size))
                      for m in inp.mini_batch_sizes)
  records = sources.eval_records(config, workdir)

  # ---- models and frozen networks ------------------------------------------
  models = method.models(config)
  frozen = method.frozen(config, workdir)
  metadata = {'config': json.loads(config.to_json_best_effort()),
              'method': method.name, 'provenance': method.provenance(config)}

  # ---- state ----------------------------------------------------------------
  params = method.init(config, models, frozen)
  tx, schedules = method.optimizers(config, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(config.seed))
  state_sharding = state_shardings(config, state, mesh)
  # Fresh buffers: the steps donate the state, which must not share any with
  # other arrays (a method's fresh params may alias its frozen networks).
  state = sharding.place(state, state_sharding)
  frozen_on_mesh = jax.device_put(frozen, sharding.replicated(mesh))
  ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir),
                                    max_to_keep=config.keep_ckpts)
  state, data_state = ckpt.restore_latest_good(state, metadata)
  if data_state is not None:
    train_iter.set_state(data_state)
  start = int(state.step)
  writer.truncate_after(start)  # steps a killed run logged past its save

  # ---- steps ----------------------------------------------------------------
  # The state is donated: each step reuses its buffers for the new state.
  step_fns = train_step.jit_phases(
      method.phases(config, method.models(config, training=True), schedules),
      mesh=mesh, state_sharding=state_sharding, donate=True)
  progress = metric_writers.ProgressReporter(
      config.total_steps, start_step=start,
      every_steps=config.log_training_steps)
  pending = hot_loop.PendingMetrics()
  result: dict[str, Any] = {}
  eval_last = config.get('eval_last', True)

  def batches():
    # Each batch travels with the iterator state just after it: prefetching
    # reads ahead, and a checkpoint must resume at the next unused batch.
    for step in range(start, config.total_steps):
      batch = input_pipeline.progressive_crop(
          next(train_iter), step=step, seed=config.seed,
          mini_batch_sizes=local_minis, gt_sizes=inp.gt_sizes,
          stage_steps=inp.stage_steps)
      yield {k: batch[k] for k in ('lq', 'gt')}, train_iter.get_state()

  put = lambda item: (sharding.shard_batch(item[0], mesh), item[1])
  try:
    for step, (batch, data_state) in enumerate(
        hot_loop.device_prefetch(batches(), put), start):
      name = method.phase(config, step)
      state, metrics = step_fns[name](state, batch, frozen_on_mesh)
      done = step + 1
      pending.add(done, name, metrics)
      last = done == config.total_steps
      due = lambda every: bool(every) and done % every == 0
      log = due(config.log_training_steps)
      save = due(config.ckpt_steps) or last
      evaluate = records is not None and (
          due(config.eval_steps) or (last and eval_last))
      if log or save or evaluate or last:
        _log_and_check(pending, writer, progress, ckpt)
      if save:
        ckpt.save(done, state, data_state, metadata)
      if evaluate:
        result = evaluate_and_log(method, config, state, frozen, records,
                                  writer, done, workdir)
    if (records is not None and eval_last and not result
        and start >= config.total_steps):
      result = evaluate_and_log(method, config, state, frozen, records,
                                writer, start, workdir)
  finally:
    # Pending async saves finish (and get their digests) even when the
    # loop stops on a non-finite loss: the last good checkpoint is kept.
    ckpt.close()
    writer.close()
    train_iter.close()  # stops grain worker processes, if any
  return result


def evaluate_checkpoint(config: Config, workdir: str) -> dict[str, Any]:
  """``--mode=eval``: the latest checkpoint of ``workdir`` on the config's
  eval split, through the same evaluator as training."""
  method = methods.for_config(config)
  records = sources.eval_records(config, workdir)
  if records is None:
    raise ValueError('The config has no eval split (input.eval_lq_dir).')
  which = 'ema_params' if method.eval_weights(config) == 'ema' else 'params'
  params, meta = checkpointing.load_params(workdir, which=which)
  frozen = method.deploy_frozen(config, workdir)
  writer = metric_writers.process_writer(workdir)
  res = evaluate_and_log(method, config, params, frozen, records, writer,
                         meta['step'], workdir)
  writer.close()
  return res
