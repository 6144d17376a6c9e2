"""``train_and_evaluate(config, workdir)``: the S1 / S2 / IR-Flow loop.

Banner-sectioned like big_vision's train.py: data → models → frozen nets →
state (fresh or resumed) → jitted steps → loop with logging, checkpoints and
evaluation. Resumes automatically from the latest checkpoint in
``<workdir>/checkpoints``. A non-finite loss stops the run before anything is
saved, so the last good checkpoint stays intact.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from restorect_jax import checkpoint_io
from restorect_jax import checkpointing
from restorect_jax import convert
from restorect_jax import evaluators
from restorect_jax import input_pipeline
from restorect_jax import metric_writers
from restorect_jax import optim
from restorect_jax import sharding
from restorect_jax import steps as steps_lib
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import init_variables
from restorect_jax.models.rgformer import PRIOR_DIM
from restorect_jax.train_state import TrainState

# Parameters of the teacher that the student does not have, and the
# student's parameters that do not come from the teacher (the reference
# loads the S1 EMA checkpoint with strict_load_g False; only G matches).
TEACHER_KEYS_NOT_IN_STUDENT = ('E_rex', 'E_img')
STUDENT_KEYS_NOT_FROM_TEACHER = ('img_condition', 'rex_condition',
                                 'img_denoise', 'rex_denoise')


class NonFiniteLossError(FloatingPointError):
  """Raised when a training loss is NaN or inf."""


# ----------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------


def data_paths(config: ml_collections.ConfigDict, workdir: str
               ) -> dict[str, str]:
  """Resolves the train / eval folders (building the demo set if needed)."""
  inp = config.input
  data_dir = inp.data_dir
  if inp.dataset == 'demo':
    from restorect_jax import demo_data  # pylint: disable=g-import-not-at-top
    data_dir = data_dir or os.path.join(workdir, 'demo_data')
    if jax.process_index() == 0:
      demo_data.make_demo_pairs(data_dir, seed=config.seed)
    _sync_processes('demo_data')
  join = lambda p: p if not p or os.path.isabs(p) else os.path.join(
      data_dir, p)
  return {k: join(inp[k]) for k in ('lq_dir', 'gt_dir', 'eval_lq_dir',
                                    'eval_gt_dir')}


def train_source(config: ml_collections.ConfigDict, paths) -> Any:
  """The training records: a prepared TFDS split or the lq/gt folders."""
  inp = config.input
  if inp.tfds.name:
    from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
    return datasets.data_source(inp.tfds.name, inp.tfds.train_split,
                                inp.tfds.data_dir)
  return input_pipeline.PairedFolderSource(
      paths['lq_dir'], paths['gt_dir'], prefix_match=inp.prefix_match)


def eval_records(config, paths) -> Any:
  """The eval split, or None. Denoising synthesises seeded noisy inputs."""
  inp = config.input
  if inp.tfds.name and inp.tfds.eval_split:
    from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
    source = datasets.data_source(inp.tfds.name, inp.tfds.eval_split,
                                  inp.tfds.data_dir)
  elif inp.tfds.name or not paths['eval_lq_dir']:
    return None
  else:
    source = input_pipeline.PairedFolderSource(
        paths['eval_lq_dir'], paths['eval_gt_dir'],
        prefix_match=inp.prefix_match)
  records = input_pipeline.eval_dataset(
      source, batch_axis=False, resize=inp.eval_resize,
      resize_size=inp.eval_resize_size)
  sigma = config.irflow.noise_sigma if config.stage == 'irflow' else 0.0
  if sigma:
    records = _SyntheticNoise(records, sigma, config.seed)
  return records


class _SyntheticNoise:
  """Re-iterable records whose ``lq`` is ``gt + σ·N(0, 1)``, seeded per image.

  The reference draws fresh, unseeded noise at every validation; a fixed
  seed makes evaluations of different checkpoints comparable.
  """

  def __init__(self, records, sigma: float, seed: int):
    self.records, self.sigma, self.seed = records, sigma, seed

  def __iter__(self):
    for i, rec in enumerate(self.records):
      gt = np.asarray(rec['gt'], np.float32)
      rng = np.random.default_rng([self.seed, i])
      noise = rng.standard_normal(gt.shape).astype(np.float32)
      yield dict(rec, lq=gt + np.float32(self.sigma) * noise)


# ----------------------------------------------------------------------------
# Models and frozen networks.
# ----------------------------------------------------------------------------


COMPUTE_DTYPES = ('float32', 'bfloat16')


def build_models(config: ml_collections.ConfigDict, *,
                 training: bool = False) -> dict[str, Any]:
  """The stage's networks.

  Args:
    config: the run config.
    training: the train step's versions: computing in
      ``config.compute_dtype`` (their float32 params are cast where used,
      Flax's ``dtype`` / ``param_dtype`` convention) and with
      ``config.remat``. Otherwise evaluation's: ``config.model.dtype``, no
      remat. Both have the same parameter tree.
  """
  m = config.model
  dtype, extra = jnp.dtype(m.dtype), {}
  if training:
    cd = config.get('compute_dtype', 'float32')
    if cd not in COMPUTE_DTYPES:
      raise ValueError(f'config.compute_dtype must be one of '
                       f'{COMPUTE_DTYPES}, got {cd!r}.')
    dtype = jnp.dtype(cd)
    if config.get('remat', False):
      extra['remat'] = True
  dtypes = dict(dtype=dtype, param_dtype=jnp.dtype(m.param_dtype))
  if config.stage == 'irflow':
    name = 'irflow_base' if config.irflow.base else 'irflow'
    return {'irflow': Model(name, m.variant, **dtypes, **extra)}
  kw = dict(layer_norm_type=m.layer_norm_type, **dtypes, **extra)
  return {'teacher': Model('teacher', m.variant, **kw),
          'student': Model('student', m.variant, **kw),
          'interface': Model('interface', m.variant, **kw),
          'decom': DecomNet(**dtypes)}


def _example(batch=1, size=32):
  img = jnp.zeros((batch, size, size, 3), jnp.float32)
  rex = jnp.zeros((batch, size, size, 4), jnp.float32)
  z = jnp.zeros((batch, PRIOR_DIM), jnp.float32)
  return img, rex, z


def load_decom(path: str, seed: int, which: str) -> dict[str, Any]:
  """A DecomNet from a .pth/.npz state dict, a Flax directory, or random.

  Without a path the DecomNet is randomly initialised (and frozen): the
  run works, but its Retinex maps carry no Retinex meaning. The published
  weights are Reti-Diff's ``init_low.pth`` (Dl) and ``init_high.pth`` (Dh).
  """
  img, _, _ = _example()
  template = init_variables(DecomNet(), seed, img)
  if not path:
    logging.warning(
        'No DecomNet weights for %s: using a randomly initialised, frozen '
        'DecomNet. Pass config.decom_init.%s (the published Reti-Diff '
        'weights) for real runs.', which, which)
    return jax.tree.map(np.asarray, template)
  if os.path.isdir(path):
    return checkpoint_io.load_variables(path)
  sd = convert.load_state_dict(path)
  return convert.torch_to_flax(sd, template, **convert.PRESETS['decomnet'])


def frozen_decoms(config: ml_collections.ConfigDict, workdir: str
                  ) -> dict[str, Any]:
  """Dl and Dh for this run, saved in the workdir so resumes, evals and S2
  use exactly the same frozen networks.

  Order: ``config.decom_init.<which>``, else the copy saved in this workdir,
  else (S2) the copy saved by the teacher's run, else a seeded random init.
  """
  out, to_save = {}, []
  for i, which in enumerate(('low', 'high')):
    saved = os.path.join(workdir, f'frozen_decom_{which}')
    teacher_copy = os.path.join(config.teacher_init or '',
                                f'frozen_decom_{which}')
    path = config.decom_init[which]
    if not path and os.path.isdir(saved):
      path = saved
    elif not path and config.teacher_init and os.path.isdir(teacher_copy):
      path = teacher_copy
    out[f'decom_{which}'] = load_decom(path, config.seed + 1 + i, which)
    if not os.path.isdir(saved):
      to_save.append((out[f'decom_{which}'], saved, path or 'random'))
  # Every process chooses its source before any writes; the (collective)
  # Orbax saves then run on every process.
  _sync_processes('frozen_decoms_loaded')
  for variables, saved, source in to_save:
    checkpoint_io.save_variables(variables, saved,
                                 metadata={'source': source})
  return out


def _sync_processes(name: str) -> None:
  """A barrier across processes (nothing in a single-process run)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


class _NullWriter:
  """The metric writer of processes other than 0: writes nothing."""

  def write_scalars(self, step, scalars):
    del step, scalars

  def write_images(self, step, images):
    del step, images

  def write_hparams(self, hparams):
    del hparams

  def close(self):
    pass


def _writer(workdir: str):
  """Process 0 writes metrics, images and eval files; others do not."""
  if jax.process_index() == 0:
    return metric_writers.MetricWriter(workdir)
  return _NullWriter()


def init_params(config, models, frozen) -> dict[str, Any]:
  """Fresh trainable params of the stage."""
  img, rex, z = _example()
  if config.stage == 'irflow':
    args = (img,) if config.irflow.base else (img, jnp.zeros((1,), jnp.int32))
    return {'model': init_variables(models['irflow'], config.seed,
                                    *args)['params']}
  if config.stage == 's1':
    v = init_variables(models['teacher'], config.seed, img, img, rex, rex)
    s = float(frozen['decom_high']['params']['anisotropic_diffusion.s'])
    return {'model': v['params'],
            'constraints': {'aniso_s': jnp.asarray(s, jnp.float32),
                            'hvi_k': jnp.asarray(1.0, jnp.float32)}}
  v = init_variables(models['student'], config.seed, img, rex, z, z)
  return {'model': v['params']}


def student_from_teacher(student_params: dict[str, Any],
                         teacher_params: dict[str, Any]) -> dict[str, Any]:
  """Copies the teacher's (EMA) G into the student; all else stays fresh."""
  g_t, g_s = teacher_params['G'], student_params['G']
  if jax.tree.structure(g_t) != jax.tree.structure(g_s) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(g_t),
                                         jax.tree.leaves(g_s))):
    raise ValueError(
        'The teacher checkpoint\'s G does not match the student\'s G (width, '
        'depth or layer_norm_type differ); use the same config.model.')
  logging.info('Student G initialised from the teacher EMA G; teacher keys '
               'skipped: %s; student keys left at init: %s',
               TEACHER_KEYS_NOT_IN_STUDENT, STUDENT_KEYS_NOT_FROM_TEACHER)
  return dict(student_params, G=jax.tree.map(jnp.asarray, g_t))


def make_optimizers(config, params):
  """Optimizers and their schedules per stage (keyed like ``opt_state``)."""
  sch, lr = config.schedule, config.optim.lr
  if config.stage == 'irflow':
    schedules = {'main': optim.multistep(lr, sch.milestones, sch.gamma)}
    return {'main': optim.adamw(schedules['main'], config.optim,
                                params)}, schedules
  if config.stage == 's1':
    schedules = {'main': optim.cosine_restart_cyclic(
        lr, sch.periods, sch.restart_weights, sch.eta_mins)}
    trainable = [r'^model\.'] + ([r'^constraints\.'] if
                                 config.switches.learnable_constraints else [])
    tx = {'main': optim.adamw(schedules['main'], config.optim, params,
                              trainable)}
    return tx, schedules
  schedules = {
      'phase1': optim.step_decay(lr, sch.phase1_every, sch.phase1_gamma),
      'phase2': optim.step_decay(lr, sch.phase2_every, sch.phase2_gamma)}
  tx = {'phase1': optim.adamw(schedules['phase1'], config.optim, params,
                              [r'^model\.(img|rex)_(condition|denoise)\.']),
        'phase2': optim.adamw(schedules['phase2'], config.optim, params)}
  return tx, schedules


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


def _pick(state: TrainState, which: str) -> Any:
  return state.ema_params if which == 'ema' else state.params


def _metadata(config, teacher_info) -> dict[str, Any]:
  return {'config': json.loads(config.to_json_best_effort()),
          'teacher': teacher_info}


def _eval_and_log(config, models, params, frozen, records, writer, step,
                  workdir) -> dict[str, Any]:
  """Evaluates ``params`` (EMA unless configured) and logs the results."""
  kind = {'s1': 'teacher', 's2': 'student', 'irflow': 'irflow'}[config.stage]
  if kind == 'irflow':
    predict = evaluators.make_irflow_predict(
        params, models['irflow'], num_steps=config.rf_steps,
        sampler=config.irflow.sampler,
        channel_order=config.irflow.channel_order, base=config.irflow.base)
  else:
    predict = evaluators.make_predict(
        kind, params, frozen, teacher=models['teacher'],
        student=models['student'], decom=models['decom'],
        rf_steps=config.rf_steps, seed=config.seed)
  res = evaluators.evaluate(predict, records,
                            max_images=config.eval_max_images,
                            keep_outputs=2,
                            crop_border=config.eval_crop_border)
  writer.write_scalars(step, {'eval/psnr': res['psnr'],
                              'eval/ssim': res['ssim']})
  grid = metric_writers.image_grid([[lq, out, gt] for _, lq, out, gt in
                                    res['outputs']])
  writer.write_images(step, {'eval_lq_out_gt': grid})
  logging.info('step %d eval (%s, %s params, %d images): PSNR %.3f SSIM '
               '%.4f', step, kind, _eval_params_name(config), res['n'],
               res['psnr'], res['ssim'])
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'eval.json'), 'w') as f:
      json.dump({k: v for k, v in res.items() if k != 'outputs'} | {
          'step': step, 'predictor': kind}, f, indent=1)
  return res


def _eval_params_name(config) -> str:
  """'ema' or 'online': which weights evaluation uses (IR-Flow switch)."""
  if config.stage == 'irflow':
    if config.irflow.eval_params not in ('ema', 'online'):
      raise ValueError("config.irflow.eval_params must be 'ema' or "
                       f"'online', got {config.irflow.eval_params!r}.")
    return config.irflow.eval_params
  return 'ema'


def _frozen(config, workdir) -> dict[str, Any]:
  """Frozen networks of the stage (none for IR-Flow)."""
  return {} if config.stage == 'irflow' else frozen_decoms(config, workdir)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The training mesh of ``config.mesh`` (restorect_jax.sharding)."""
  m = config.get('mesh', {})
  return sharding.make_mesh(m.get('num_devices', 0), m.get('fsdp', 1))


def state_shardings(config: ml_collections.ConfigDict, state: TrainState,
                    mesh: jax.sharding.Mesh) -> TrainState:
  """Shardings of the train state: replicated, or FSDP on big leaves."""
  return sharding.param_shardings(
      state, mesh, fsdp_min_size=config.get('mesh', {}).get(
          'fsdp_min_size', sharding.FSDP_MIN_SIZE))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> dict[str, Any]:
  """Trains the configured stage in ``workdir``; returns the final eval."""
  if config.stage not in ('s1', 's2', 'irflow'):
    raise ValueError('config.stage must be s1, s2 or irflow, got '
                     f'{config.stage!r}.')
  eval_which = _eval_params_name(config)
  os.makedirs(workdir, exist_ok=True)
  writer = _writer(workdir)
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
  paths = data_paths(config, workdir)
  train_iter = iter(input_pipeline.train_dataset(
      train_source(config, paths), patch_size=inp.patch_size,
      batch_size=sharding.process_batch_size(inp.batch_size),
      seed=config.seed, shard_index=jax.process_index(),
      shard_count=jax.process_count(), resize=inp.resize,
      resize_size=inp.resize_size, num_workers=inp.num_workers))
  local_minis = tuple(sharding.process_batch_size(min(int(m), inp.batch_size))
                      for m in inp.mini_batch_sizes)
  records = eval_records(config, paths)

  # ---- models and frozen networks ------------------------------------------
  models = build_models(config)
  train_models = build_models(config, training=True)
  frozen = _frozen(config, workdir)
  teacher_info = None
  if config.stage == 's2':
    if not config.teacher_init:
      raise ValueError('S2 needs config.teacher_init (an S1 workdir).')
    teacher_ema, meta = checkpointing.load_params(config.teacher_init)
    frozen['teacher'] = teacher_ema['model']
    teacher_info = {
        'path': os.path.abspath(config.teacher_init), 'step': meta['step'],
        'sha256': checkpointing.tree_hash(os.path.join(
            checkpointing.checkpoint_dir(config.teacher_init),
            str(meta['step'])))}

  # ---- state ----------------------------------------------------------------
  params = init_params(config, models, frozen)
  if config.stage == 's2':
    params['model'] = student_from_teacher(params['model'], frozen['teacher'])
  tx, schedules = make_optimizers(config, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(config.seed))
  state_sharding = state_shardings(config, state, mesh)
  # Fresh buffers: the steps donate the state, which must not share any with
  # other arrays (the student's G starts as the frozen teacher's G).
  state = sharding.place(state, state_sharding)
  frozen_on_mesh = jax.device_put(frozen, sharding.replicated(mesh))
  ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir),
                                    max_to_keep=config.keep_ckpts)
  if ckpt.latest_step() is not None:
    # The abstract target carries the shardings: arrays come back on the
    # mesh (replicated, or split over 'fsdp').
    state, data_state, meta = ckpt.restore(state)
    state = jax.device_put(state, state_sharding)
    train_iter.set_state(data_state)
    if teacher_info and meta.get('teacher') and (
        meta['teacher']['sha256'] != teacher_info['sha256']):
      logging.warning('The teacher checkpoint changed since this run '
                      'started (%s).', meta['teacher'])
    logging.info('Resumed from step %d.', int(state.step))
  metadata = _metadata(config, teacher_info)

  # ---- steps ----------------------------------------------------------------
  # The state is donated: each step reuses its buffers for the new state.
  step_fns = steps_lib.make_stage_steps(
      config, teacher=train_models.get('teacher'),
      student=train_models.get('student', train_models.get('irflow')),
      decom=train_models.get('decom'), schedules=schedules, mesh=mesh,
      state_sharding=state_sharding, donate=True)
  start = int(state.step)
  progress = metric_writers.ProgressReporter(
      config.total_steps, start_step=start,
      every_steps=config.log_training_steps)
  result: dict[str, Any] = {}

  for step in range(start, config.total_steps):
    batch = next(train_iter)
    batch = input_pipeline.progressive_crop(
        batch, step=step, seed=config.seed,
        mini_batch_sizes=local_minis, gt_sizes=inp.gt_sizes,
        stage_steps=inp.stage_steps)
    batch = sharding.shard_batch({k: batch[k] for k in ('lq', 'gt')}, mesh)
    if config.stage in ('s1', 'irflow'):
      name = 'main'
    else:
      name = 'phase1' if step < config.phase1_steps else 'phase2'
    state, metrics = step_fns[name](state, batch, frozen_on_mesh)
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    done = step + 1
    if not math.isfinite(metrics['loss']):
      raise NonFiniteLossError(
          f'Non-finite loss {metrics["loss"]} at step {done} ({name}); '
          f'terms: {metrics}. Stopping; the last good checkpoint is step '
          f'{ckpt.latest_step()} in {ckpt.directory}.')
    if config.log_training_steps and (
        done % config.log_training_steps == 0 or done == config.total_steps):
      writer.write_scalars(done, {f'train/{k}': v for k, v in
                                  metrics.items()})
      progress(done, {'loss': metrics['loss'], 'lr': metrics['lr']})
    if (config.ckpt_steps and done % config.ckpt_steps == 0) or (
        done == config.total_steps):
      ckpt.save(done, state, train_iter.get_state(), metadata)
    if records is not None and ((config.eval_steps and
                                 done % config.eval_steps == 0) or
                                done == config.total_steps):
      result = _eval_and_log(
          config, models, sharding.local_copy(_pick(state, eval_which)),
          frozen, records, writer, done, workdir)
  if records is not None and not result and start >= config.total_steps:
    result = _eval_and_log(
        config, models, sharding.local_copy(_pick(state, eval_which)),
        frozen, records, writer, start, workdir)
  writer.close()
  ckpt.close()
  train_iter.close()  # stops grain worker processes, if any
  return result


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str
                        ) -> dict[str, Any]:
  """``--mode=eval``: the latest checkpoint on the eval split (EMA params,
  or the online ones where ``config.irflow.eval_params='online'``)."""
  paths = data_paths(config, workdir)
  records = eval_records(config, paths)
  if records is None:
    raise ValueError('The config has no eval split (input.eval_lq_dir).')
  models = build_models(config)
  frozen = _frozen(config, workdir)
  which = 'ema_params' if _eval_params_name(config) == 'ema' else 'params'
  params, meta = checkpointing.load_params(workdir, which=which)
  writer = _writer(workdir)
  res = _eval_and_log(config, models, params, frozen, records, writer,
                      meta['step'], workdir)
  writer.close()
  return res
