"""RestoRect as a :class:`restorect_jax.methods.base.Method`.

``config.stage`` picks the stage: ``'s1'`` trains the teacher (one phase,
``'main'``), ``'s2'`` the student (``'phase1'``: condition encoders and
velocity MLPs only, then ``'phase2'``: everything, with a fresh optimizer
as the reference steps a separate one). The frozen DecomNets are saved in
each workdir and S2 reuses the teacher run's copies, so every stage sees
the same ``Dl`` / ``Dh``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from restorect_jax import convert
from restorect_jax.core import checkpoint_io
from restorect_jax.core import checkpointing
from restorect_jax.core import optim
from restorect_jax.core import sharding
from restorect_jax.core.train_step import Phase
from restorect_jax.inference.predictor import Predictor
from restorect_jax.methods.restorect import predictor as predictor_lib
from restorect_jax.methods.restorect import steps
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import init_variables
from restorect_jax.models.rgformer import PRIOR_DIM

Config = ml_collections.ConfigDict
STAGES = ('s1', 's2')
COMPUTE_DTYPES = ('float32', 'bfloat16')
# Parameters of the teacher that the student does not have, and the
# student's parameters that do not come from the teacher (the reference
# loads the S1 EMA checkpoint with strict_load_g False; only G matches).
TEACHER_KEYS_NOT_IN_STUDENT = ('E_rex', 'E_img')
STUDENT_KEYS_NOT_FROM_TEACHER = ('img_condition', 'rex_condition',
                                 'img_denoise', 'rex_denoise')


def module_dtypes(config: Config, *, training: bool) -> dict[str, Any]:
  """``dtype`` / ``param_dtype`` (and ``remat``) of a stage's modules.

  The train step's modules compute in ``config.compute_dtype`` (float32
  params cast where used, Flax's convention) with ``config.remat``;
  evaluation's in ``config.model.dtype``. Both have one parameter tree.
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
  return dict(dtype=dtype, param_dtype=jnp.dtype(m.param_dtype), **extra)


def _example(size: int = 32):
  return (jnp.zeros((1, size, size, 3), jnp.float32),
          jnp.zeros((1, size, size, 4), jnp.float32),
          jnp.zeros((1, PRIOR_DIM), jnp.float32))


def load_decom(path: str, seed: int, which: str) -> dict[str, Any]:
  """A DecomNet from a .pth/.npz state dict, a Flax directory, or random.

  Without a path the DecomNet is randomly initialised (and frozen): the run
  works, but its Retinex maps carry no Retinex meaning. The published
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


def frozen_decoms(config: Config, workdir: str) -> dict[str, Any]:
  """Dl and Dh of this run, saved in the workdir for resumes, evals and S2.

  Order: ``config.decom_init.<which>``, else the copy saved in this workdir,
  else (S2) the copy saved by the teacher's run, else a seeded random init.
  """
  out, to_save = {}, []
  for i, which in enumerate(('low', 'high')):
    saved = os.path.join(workdir, f'frozen_decom_{which}')
    teacher_copy = os.path.join(config.get('teacher_init') or '',
                                f'frozen_decom_{which}')
    path = config.decom_init[which]
    if not path and os.path.isdir(saved):
      path = saved
    elif not path and config.get('teacher_init') and os.path.isdir(
        teacher_copy):
      path = teacher_copy
    out[f'decom_{which}'] = load_decom(path, config.seed + 1 + i, which)
    if not os.path.isdir(saved):
      to_save.append((out[f'decom_{which}'], saved, path or 'random'))
  # Every process chooses its source before any writes; the (collective)
  # Orbax saves then run on every process.
  sharding.sync_processes('frozen_decoms_loaded')
  for variables, saved, source in to_save:
    checkpoint_io.save_variables(variables, saved,
                                 metadata={'source': source})
  return out


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


def _stage(config: Config) -> str:
  if config.stage not in STAGES:
    raise ValueError(f'RestoRect config.stage must be one of {STAGES}, got '
                     f'{config.stage!r}.')
  return config.stage


def phase1_length(config: Config) -> int:
  """Steps of S2 phase 1 (see :meth:`RestoRect.phase`)."""
  n = int(config.phase1_steps)
  if config.schedule.get('count_from_one', True):
    return max(n - 1, 0)
  return n


class RestoRect:
  """RestoRect's teacher (S1) and student (S2) stages."""

  name = 'restorect'

  def models(self, config: Config, *, training: bool = False
             ) -> dict[str, nn.Module]:
    m = config.model
    kw = dict(layer_norm_type=m.layer_norm_type,
              **module_dtypes(config, training=training))
    kw['depthwise'] = m.get('depthwise', 'auto')
    dtypes = {k: kw[k] for k in ('dtype', 'param_dtype')}
    return {'teacher': Model('teacher', m.variant, **kw),
            'student': Model('student', m.variant, **kw),
            'interface': Model('interface', m.variant, **kw),
            'decom': DecomNet(**dtypes)}

  def frozen(self, config: Config, workdir: str) -> dict[str, Any]:
    frozen = frozen_decoms(config, workdir)
    if _stage(config) == 's2':
      if not config.teacher_init:
        raise ValueError('S2 needs config.teacher_init (an S1 workdir).')
      teacher_ema, _ = checkpointing.load_params(config.teacher_init)
      frozen['teacher'] = teacher_ema['model']
    return frozen

  def provenance(self, config: Config) -> dict[str, Any] | None:
    if _stage(config) != 's2':
      return None
    meta = checkpointing.load_metadata(config.teacher_init)
    return {'path': os.path.abspath(config.teacher_init),
            'step': meta['step'],
            'sha256': checkpointing.tree_hash(os.path.join(
                checkpointing.checkpoint_dir(config.teacher_init),
                str(meta['step'])))}

  def init(self, config: Config, models: dict[str, nn.Module],
           frozen: dict[str, Any]) -> dict[str, Any]:
    img, rex, z = _example()
    if _stage(config) == 's1':
      v = init_variables(models['teacher'], config.seed, img, img, rex, rex)
      s = float(frozen['decom_high']['params']['anisotropic_diffusion.s'])
      return {'model': v['params'],
              'constraints': {'aniso_s': jnp.asarray(s, jnp.float32),
                              'hvi_k': jnp.asarray(1.0, jnp.float32)}}
    v = init_variables(models['student'], config.seed, img, rex, z, z)
    return {'model': student_from_teacher(v['params'], frozen['teacher'])}

  def optimizers(self, config: Config, params: dict[str, Any]):
    sch, lr = config.schedule, config.optim.lr
    shift = 1 if sch.get('count_from_one', True) else 0
    if _stage(config) == 's1':
      # BasicSR steps this scheduler only when current_iter > 1, so
      # reference iteration it runs at position it − 1: our 0-based step
      # (shared/parity/train_steps s1_step; a cycle owns its last step).
      schedules = {'main': optim.cosine_restart_cyclic(
          lr, sch.periods, sch.restart_weights, sch.eta_mins)}
      trainable = [r'^model\.'] + (
          [r'^constraints\.'] if config.switches.learnable_constraints
          else [])
      return {'main': optim.adamw(schedules['main'], config.optim, params,
                                  trainable)}, schedules
    # Phase 1's formula reads current_iter (1-based) directly; phase 2's
    # reads current_iter − encoder_iter, 0 at its first step.
    schedules = {
        'phase1': optim.shifted(optim.step_decay(
            lr, sch.phase1_every, sch.phase1_gamma), shift),
        'phase2': optim.step_decay(lr, sch.phase2_every, sch.phase2_gamma)}
    tx = {'phase1': optim.adamw(
        schedules['phase1'], config.optim, params,
        [r'^model\.(img|rex)_(condition|denoise)\.']),
          'phase2': optim.adamw(schedules['phase2'], config.optim, params)}
    return tx, schedules

  def phases(self, config: Config, models: dict[str, nn.Module],
             schedules) -> dict[str, Phase]:
    ema = config.optim.ema_decay
    if _stage(config) == 's1':
      loss = functools.partial(steps.teacher_loss, teacher=models['teacher'],
                               decom=models['decom'], config=config)
      return {'main': Phase('main', loss, ema, schedules['main'])}
    draw = functools.partial(steps.draw_student,
                             continuous=config.switches.continuous_time)
    out = {}
    for phase, name in ((1, 'phase1'), (2, 'phase2')):
      loss = functools.partial(
          steps.student_loss, phase=phase, student=models['student'],
          teacher=models['teacher'], decom=models['decom'], config=config)
      out[name] = Phase(name, loss, ema, schedules[name], draw=draw,
                        count_offset=0 if phase == 1 else
                        phase1_length(config))
    return out

  def phase(self, config: Config, step: int) -> str:
    """S1: ``'main'``. S2: ``'phase1'`` while the reference would be in
    phase 1: it counts iterations from 1 and trains phase 1 while
    ``current_iter < encoder_iter``, i.e. ``phase1_steps − 1`` steps
    (``schedule.count_from_one=False``: exactly ``phase1_steps``)."""
    if _stage(config) == 's1':
      return 'main'
    return 'phase1' if step < phase1_length(config) else 'phase2'

  def eval_weights(self, config: Config) -> str:
    del config
    return 'ema'

  def deploy_frozen(self, config: Config, workdir: str) -> dict[str, Any]:
    """The frozen nets prediction needs, from the run's workdir."""
    names = ('low',) if _stage(config) == 's2' else ('low', 'high')
    return {f'decom_{w}': checkpoint_io.load_variables(
        os.path.join(workdir, f'frozen_decom_{w}')) for w in names}

  def predictor(self, config: Config, params: dict[str, Any],
                frozen: dict[str, Any], info: dict[str, Any]) -> Predictor:
    models = self.models(config)
    if _stage(config) == 's1':
      return predictor_lib.teacher_predictor(
          params['model'], frozen, teacher=models['teacher'], info=info)
    return predictor_lib.student_predictor(
        {'params': predictor_lib.interface_params(params['model'])},
        frozen['decom_low'], model=models['interface'], info=info,
        default_steps=config.rf_steps)


METHOD = RestoRect()
