"""One recorded training step of each reference, replayed through ours.

``../shared/parity/train_steps/{s1,s2_phase1,s2_phase2,irflow}_step.npz``
hold one step of the references' own training code (RestoRect's
``RestoRect_S1Model`` / ``RestoRect_S2Model.optimize_parameters``, IR-Flow's
``RFOdeModel``; ``shared/parity/README.md``, "Training steps"): the weights
before, the batch, every random draw, every loss term, the gradient of every
trained tensor, the tensors after the optimizer step and the EMA after its
update. Each case is replayed through the project's own step: the method's
optimizers and phases (``methods/<method>/method.py``) wrapped by
``core.train_step.make_train_step``, with the recorded draws fed in place of
the phase's own draw function. Every output is compared at the fixture's
per-output tolerance (``meta.tolerance_out``, with its ``abs`` compare rule
and ``after_mask`` rule) under float32 matmul precision.

``ScheduleTest`` checks the learning rate the project applies at the
reference's iteration numbers against the reference's schedules, which the
fixtures (all at lr 2e-4 / 1e-4) cannot tell apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import optax

from restorect_jax import convert
from restorect_jax.core import train_step
from restorect_jax.core.train_state import TrainState
from restorect_jax.methods.irflow import method as irflow_method
from restorect_jax.methods.restorect import flow
from restorect_jax.methods.restorect import method as restorect_method
from restorect_jax.models import DecomNet
import testutil

sys.path.insert(0, str(testutil.REPO))
# pylint: disable=g-import-not-at-top,g-bad-import-order
from configs import irflow as irflow_config  # noqa: E402
from configs import restorect_s1  # noqa: E402
from configs import restorect_s2  # noqa: E402
# pylint: enable=g-import-not-at-top,g-bad-import-order

_DIR = testutil.shared_dir() / 'parity' / 'train_steps'
# XLA:CPU compiles these networks 3x faster without fusion emitters
# (core.train_step.jit_step) and faster again at optimisation level 0 (what
# ``jax_disable_most_optimizations`` sets; the step's results stay within
# the fixtures' tolerances).
_XLA = {'xla_cpu_use_fusion_emitters': False,
        'xla_backend_optimization_level': 0,
        'xla_llvm_disable_expensive_passes': True}
_B, _HW = 2, 32  # the fixtures' batch (README "Training steps": 2 of 32²)
# RestoRect options/trainS2_LLIE_syn.yml@37bb189:104 (LOL-v1).
_ENCODER_ITER = 80_000


# ----------------------------------------------------------------------------
# The recorded step.
# ----------------------------------------------------------------------------


class Record:
  """One ``train_steps/<case>.npz``: arrays by name, ``meta`` parsed."""

  def __init__(self, case: str):
    with np.load(_DIR / f'{case}.npz', allow_pickle=False) as z:
      self.data = {k: z[k] for k in z.files}
    self.meta = json.loads(str(self.data.pop('meta')))
    self.case = case

  def sd(self, net: str) -> dict[str, np.ndarray]:
    """``sd/<net>/*`` as a flat PyTorch state dict."""
    p = f'sd/{net}/'
    return {k[len(p):]: v for k, v in self.data.items() if k.startswith(p)}

  def image(self, name: str, *, flip: bool = False) -> np.ndarray:
    """``in/<name>`` in NHWC (``flip``: channels reversed, BGR → RGB)."""
    x = self.data[f'in/{name}']
    return testutil.to_nhwc(x[:, ::-1] if flip else x).copy()

  def tol(self, name: str) -> float:
    return self.meta['tolerance_out'][name]

  def trainable(self) -> list[tuple[str, str]]:
    """``meta.trainable`` as ``(net, torch key)`` pairs."""
    return [tuple(n.split('/', 1)) for n in self.meta['trainable']]


def _variables(module, sd, *args, preset: str) -> dict:
  """Converted Flax variables of ``module`` from a PyTorch state dict."""
  template = jax.eval_shape(module.init, jax.random.key(0), *args)
  return convert.torch_to_flax(sd, template, **convert.PRESETS[preset])


def _torch_named(tree) -> dict[str, np.ndarray]:
  """A model's param tree under its PyTorch names, in PyTorch layout."""
  return convert.flax_to_torch({'params': jax.device_get(tree)},
                               aliases=False)


def _fixed_draws(draws: dict[str, np.ndarray]):
  """A phase ``draw`` function returning the recorded draws."""
  return lambda rng, batch: {k: jnp.asarray(v) for k, v in draws.items()}


def _recording(tx: optax.GradientTransformation
               ) -> optax.GradientTransformation:
  """``tx``, also keeping the gradients it is given in its state.

  Its updates are ``tx``'s; the state is ``(last gradients, tx's state)``.
  The step's own gradients come back this way, from the one compiled step
  (compiling ``jax.value_and_grad(phase.loss)`` beside it doubles the
  compile time).
  """
  def init(params):
    return jax.tree.map(jnp.zeros_like, params), tx.init(params)

  def update(grads, state, params=None):
    updates, inner = tx.update(grads, state[1], params)
    return updates, (grads, inner)
  return optax.GradientTransformation(init, update)


def _state(params, tx: dict, step: int) -> TrainState:
  """A fresh train state (EMA = params) at global step ``step``."""
  tx = {k: _recording(t) for k, t in tx.items()}
  create = lambda p: TrainState.create(p, tx, jax.random.key(0)).replace(
      step=jnp.asarray(step, jnp.int32))
  return jax.jit(create)(params)


def _replay(phase: train_step.Phase, state: TrainState, batch, frozen):
  """Runs ``make_train_step(phase)`` once.

  Returns:
    ``(new_state, metrics, grads)`` as NumPy: the gradients are those the
    stepping optimizer received.
  """
  step = train_step.make_train_step(phase)
  with jax.default_matmul_precision('float32'):
    new_state, metrics = jax.jit(step, compiler_options=_XLA)(
        state, batch, frozen)
  new_state, metrics = jax.device_get((new_state, metrics))
  grads = new_state.opt_state[phase.optimizer][0]
  return new_state, metrics, grads


class _StepParity:
  """Shared checks; a subclass's ``setUpClass`` replays its record.

  It sets ``rec`` (the :class:`Record`), ``net`` (the trained network's
  name in the record), ``before`` / ``after`` / ``ema`` / ``grads`` (the
  trained network under PyTorch names: params before and after the step,
  EMA after, gradient), ``loss`` / ``metrics`` (of the step),
  ``state`` / ``new_state`` (before and after the step) and
  ``terms``: ``{our metric: {reference term: weight}}``.
  """

  rec: Record
  net: str
  terms: dict[str, dict[str, float]]

  @classmethod
  def replay(cls, phase, state, batch, frozen):
    new_state, metrics, grads = _replay(phase, state, batch, frozen)
    cls.state, cls.new_state = jax.device_get(state), new_state
    cls.loss, cls.metrics = metrics['loss'], metrics
    cls.grads = _torch_named(grads['model'])
    cls.before = _torch_named(state.params['model'])
    cls.after = _torch_named(new_state.params['model'])
    cls.ema = _torch_named(new_state.ema_params['model'])

  @classmethod
  def tearDownClass(cls):
    # The records and trees are tens of MB each: free them per case.
    for name in ('rec', 'state', 'new_state', 'metrics', 'grads', 'before',
                 'after', 'ema'):
      setattr(cls, name, None)
    super().tearDownClass()

  def close(self, got, name: str, mask: np.ndarray | None = None) -> None:
    """``max|got − out| ≤ tolerance_out[name]`` (on ``mask`` if given)."""
    want = self.rec.data[name]
    got = np.asarray(got, np.float64)
    self.assertEqual(got.shape, want.shape, name)
    if mask is not None:
      got, want = got[mask], want[mask]
    testutil.assert_close(self, got, want, self.rec.tol(name),
                          f'{self.rec.case}:{name}')

  def grad_mask(self, key: str) -> np.ndarray | None:
    """``after_mask``: where |reference gradient| ≥ its threshold (None:
    everywhere, for EMA keys without a gradient)."""
    g = self.rec.data.get(f'out/grad/{self.net}/{key}')
    if g is None:
      return None
    rule = self.rec.meta['after_mask']['grad_threshold']
    return np.abs(g) >= rule[f'out/after/{self.net}/{key}']

  # ---- losses ---------------------------------------------------------------

  def test_loss_terms(self):
    recorded = {k[len('out/loss/'):] for k in self.rec.data
                if k.startswith('out/loss/')} - {'total'}
    used = set().union(*(t.keys() for t in self.terms.values()))
    self.assertEqual(used, recorded)  # every reference term is checked
    for ours, combo in self.terms.items():
      want = sum(w * float(self.rec.data[f'out/loss/{t}'])
                 for t, w in combo.items())
      tol = sum(abs(w) * self.rec.tol(f'out/loss/{t}')
                for t, w in combo.items())
      testutil.assert_close(self, self.metrics[ours], want, tol,
                            f'{self.rec.case}:{ours} vs {combo}')

  def test_total(self):
    self.close(self.loss, 'out/loss/total')

  # ---- gradients and the update ---------------------------------------------

  def test_gradients(self):
    compare = self.rec.meta.get('compare', {})
    for net, key in self.rec.trainable():
      name = f'out/grad/{net}/{key}'
      self.assertIn(compare.get(name, 'rel'), ('rel', 'abs'), name)
      # tolerance_out already holds the absolute tolerance of `abs` names.
      self.close(self.grads[key], name)
    # The trained network's other tensors get no gradient (S2 phase 1: G
    # does not run), as in the reference (meta.frozen_with_grad names only
    # tensors of other networks).
    trainable = {k for _, k in self.rec.trainable()}
    for f in self.rec.meta['frozen_with_grad']:
      self.assertFalse(f.startswith(f'{self.net}/'), f)
    for key, g in self.grads.items():
      if key not in trainable and not _shared_copy(key, self.grads):
        self.assertFalse(np.any(g), key)

  def test_exactly_the_trainable_parameters_change(self):
    trainable = {k for _, k in self.rec.trainable()}
    moved = {k for n, k in self.rec.trainable()
             if np.any(self.rec.data[f'out/grad/{n}/{k}'] != 0)}
    changed = {k for k, v in self.after.items()
               if not np.array_equal(v, self.before[k])}
    # The shared RPE ResBlocks are stored under E_R and E_I: keep E_R's.
    changed = {k for k in changed if k in trainable or not
               _shared_copy(k, self.before)}
    self.assertEqual(changed, moved)
    self.assertTrue(moved <= trainable)
    for name, sub in self.state.params.items():
      if name != 'model':  # S1's constraints: in no optimizer
        for a, b in zip(jax.tree.leaves(sub),
                        jax.tree.leaves(self.new_state.params[name])):
          np.testing.assert_array_equal(a, b, err_msg=name)

  def test_parameters_after(self):
    excluded = self.rec.meta['after_mask']['n_excluded']
    for net, key in self.rec.trainable():
      name = f'out/after/{net}/{key}'
      mask = self.grad_mask(key)
      self.assertEqual(int(np.sum(~mask)), excluded.get(name, 0), name)
      self.close(self.after[key], name, mask=mask)

  def test_ema(self):
    p = f'out/ema/{self.net}/'
    keys = [k[len(p):] for k in self.rec.data if k.startswith(p)]
    self.assertTrue(keys)
    for key in keys:
      self.close(self.ema[key], p + key, mask=self.grad_mask(key))

  def test_step_counter(self):
    self.assertEqual(int(self.new_state.step), int(self.state.step) + 1)


def _assert_lr(test, got, want: float) -> None:
  """The logged lr (float32) equals the reference's."""
  test.assertLessEqual(abs(float(got) - want), 1e-7 * want,
                       f'lr {float(got):.9g}, reference {want:.9g}')


def _shared_copy(key: str, sd: dict) -> bool:
  """True for an ``E_I.<k>.body.*`` key that duplicates ``E_R.<k>``."""
  return '.E_I.' in key and '.body.' in key and (
      key.replace('.E_I.', '.E_R.') in sd)


def _check_optimizer(test, rec: Record, config) -> None:
  """``meta.optimizer`` against ``config.optim``."""
  o = rec.meta['optimizer']
  test.assertAlmostEqual(config.optim.lr, o['lr'], delta=1e-12)
  test.assertEqual([config.optim.b1, config.optim.b2], o['betas'])
  test.assertEqual(config.optim.eps, o['eps'])
  test.assertEqual(config.optim.weight_decay, o['weight_decay'])
  test.assertFalse(o['amsgrad'])
  test.assertFalse(config.optim.get('grad_clip_norm'))


# ----------------------------------------------------------------------------
# RestoRect.
# ----------------------------------------------------------------------------


def _restorect_config(stage: str):
  mod = {'s1': restorect_s1, 's2': restorect_s2}[stage]
  c = mod.get_config('dataset=lol_v1')
  c.model.variant = 'tiny'  # dim 16, blocks [1,1,1,1], refinement 1, ...
  return c


def _decoms(rec: Record) -> dict:
  img = jnp.zeros((1, _HW, _HW, 3), jnp.float32)
  return {f'decom_{w}': _variables(DecomNet(), rec.sd(f'Decom_{n}'), img,
                                   preset='decomnet')
          for w, n in (('low', 'l'), ('high', 'h'))}


def _restorect_setup(case: str, stage: str):
  """Record, config, method models, converted params and frozen nets."""
  rec = Record(case)
  config = _restorect_config(stage)
  m = restorect_method.METHOD
  models = m.models(config, training=True)
  frozen = _decoms(rec)
  img = jnp.zeros((1, _HW, _HW, 3), jnp.float32)
  rex = jnp.zeros((1, _HW, _HW, 4), jnp.float32)
  z = jnp.zeros((1, 256), jnp.float32)
  if stage == 's1':
    v = _variables(models['teacher'], rec.sd('net_g'), img, img, rex, rex,
                   preset='teacher')
    # As RestoRect.init: s from Dh (0.1 here), the HVI k at its init 1.
    s = frozen['decom_high']['params']['anisotropic_diffusion.s']
    params = {'model': v['params'],
              'constraints': {'aniso_s': jnp.asarray(s, jnp.float32),
                              'hvi_k': jnp.asarray(1.0, jnp.float32)}}
  else:
    t = _variables(models['teacher'], rec.sd('net_g_S1'), img, img, rex,
                   rex, preset='teacher')
    frozen['teacher'] = t['params']
    v = _variables(models['student'], rec.sd('net_g'), img, rex, z, z,
                   preset='student')
    params = {'model': v['params']}
  params = jax.tree.map(jnp.asarray, params)
  frozen = jax.tree.map(jnp.asarray, frozen)
  batch = {'lq': jnp.asarray(rec.image('lq')),
           'gt': jnp.asarray(rec.image('gt'))}
  return rec, config, models, params, frozen, batch


def _time_grid(rec: Record, which: str) -> np.ndarray:
  """The flow's recorded ``timesteps_array`` buffer (linspace(0, 1, T))."""
  return rec.data[f'sd/net_g/{which}_diffusion.timesteps_array']


def _student_draws(rec: Record) -> dict[str, np.ndarray]:
  """The recorded S2 draws under ``steps.draw_student``'s names.

  The label ``t_idx`` is the velocity net's time input (float32, as
  ``flow.sample_time`` makes it); the interpolation time is the reference's
  ``timesteps_array[t_idx]`` (``ldm/rectified_flow.py``; the project's own
  mapping is checked against it in ``test_time_grid``).
  """
  d = {}
  for w in ('rex', 'img'):
    t_idx = rec.data[f'draws/t_idx_{w}']
    d[f't_idx_{w}'] = t_idx.astype(np.float32)
    d[f't_{w}'] = _time_grid(rec, w)[t_idx]
    d[f'eps_{w}'] = rec.data[f'draws/eps_{w}']
    d[f'noise_{w}'] = rec.data[f'draws/noise_{w}']
  return d


def _draw_shapes(phase: train_step.Phase) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes and dtypes of a phase's own draws for the fixtures' batch."""
  img = jax.ShapeDtypeStruct((_B, _HW, _HW, 3), jnp.float32)
  return jax.eval_shape(phase.draw, jax.random.key(0),
                        {'lq': img, 'gt': img})


def _check_draws(test, phase: train_step.Phase, fed: dict) -> None:
  """The fed draws have exactly the names, shapes and dtypes of the
  project's own draw function."""
  own = _draw_shapes(phase)
  test.assertEqual(sorted(own), sorted(fed))
  for k, v in own.items():
    test.assertEqual(v.shape, np.shape(fed[k]), k)
    test.assertEqual(v.dtype, np.asarray(fed[k]).dtype, k)


class S1StepTest(_StepParity, absltest.TestCase):
  """``s1_step``: the teacher's first step (current_iter 1)."""

  net = 'net_g'
  terms = {
      'loss_l1': {'l_pix': 1.0},
      'loss_decom_mat': {'l_recon_out': 1.0},
      'loss_decom_img': {'l_recon_in': 1.0},
      'loss_hvi': {'l_hvi': 1.0},
      'loss_texture_consistency': {'gt_texture_consistency': 1.0},
      'loss_illumination_smoothing': {'gt_illumination_smoothing': 1.0},
      'loss_reconstruction': {'gt_reconstruction': 1.0},
  }

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    rec, config, models, params, frozen, batch = _restorect_setup(
        's1_step', 's1')
    cls.rec, cls.config = rec, config
    m = restorect_method.METHOD
    tx, schedules = m.optimizers(config, params)
    phases = m.phases(config, models, schedules)
    s = rec.meta['current_iter'] - 1  # the reference counts from 1
    cls.phase_name = m.phase(config, s)
    phase = phases[cls.phase_name]
    state = _state(params, tx, s)
    cls.replay(phase, state, batch, frozen)
    cls.phase = phase

  def test_optimizer_and_ema_settings(self):
    _check_optimizer(self, self.rec, self.config)
    self.assertEqual(self.phase.ema_decay, self.rec.meta['ema']['decay'])
    self.assertEqual(self.phase_name, 'main')
    self.assertEqual(self.phase.draw, train_step.no_draws)

  def test_learning_rate(self):
    want = self.rec.meta['lr_by_optimizer']['optimizer_g'][0]
    _assert_lr(self, self.metrics['lr'], want)


class S2Phase1StepTest(_StepParity, absltest.TestCase):
  """``s2_phase1_step``: the student's first step (current_iter 1)."""

  net = 'net_g'
  phase_number = 1
  case = 's2_phase1_step'
  optimizer = 'optimizer_e'
  terms = {
      'loss_velocity_rex': {'l_velocity_rex': 1.0},
      'loss_velocity_img': {'l_velocity_img': 1.0},
      'loss_velocity': {'l_velocity_rex': 0.1, 'l_velocity_img': 0.1},
      'loss_kd_l1': {'r_l_abs_3': 1.0, 'i_l_abs_3': 1.0},
      'kd_kl': {'r_l_kd_3': 1.0, 'i_l_kd_3': 1.0},
  }

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    rec, config, models, params, frozen, batch = _restorect_setup(
        cls.case, 's2')
    cls.rec, cls.config = rec, config
    m = restorect_method.METHOD
    tx, schedules = m.optimizers(config, params)
    phases = m.phases(config, models, schedules)
    s = rec.meta['current_iter'] - 1  # the reference counts from 1
    cls.phase_name = m.phase(config, s)
    cls.project_phase = phases[cls.phase_name]
    phase = dataclasses.replace(cls.project_phase,
                                draw=_fixed_draws(_student_draws(rec)))
    state = _state(params, tx, s)
    cls.replay(phase, state, batch, frozen)
    cls.phase = phase
    cls.m = m

  def test_optimizer_and_ema_settings(self):
    _check_optimizer(self, self.rec, self.config)
    self.assertEqual(self.phase.ema_decay, self.rec.meta['ema']['decay'])
    self.assertEqual(self.phase_name, f'phase{self.phase_number}')
    self.assertEqual(self.rec.meta['phase'], self.phase_number)
    self.assertEqual(self.config.rf_steps, 5)  # rf sampler steps
    lw, terms = self.config.losses, self.rec.meta['loss_terms']
    for w in ('rex', 'img'):
      self.assertEqual(lw[f'velocity_weight_phase{self.phase_number}'],
                       terms[f'l_velocity_{w}']['weight_in_total'])
    self.assertEqual(self.rec.meta['config']['encoder_iter']['value'],
                     self.config.phase1_steps)

  def test_learning_rate(self):
    want = self.rec.meta['lr_by_optimizer'][self.optimizer][0]
    _assert_lr(self, self.metrics['lr'], want)

  def test_fresh_optimizer(self):
    """The stepping optimizer had taken no step (first-step bias terms)."""
    opt = self.state.opt_state[self.phase_name]
    counts = [c for c in jax.tree.leaves(opt)
              if np.asarray(c).dtype == np.int32 and np.ndim(c) == 0]
    self.assertTrue(counts)
    self.assertTrue(all(int(c) == 0 for c in counts))

  def test_draw_names(self):
    _check_draws(self, self.project_phase, _student_draws(self.rec))

  def test_time_grid(self):
    """The project's times of the labels are the reference's grid."""
    t, t_idx = jax.jit(lambda k: flow.sample_time(k, 4096))(
        jax.random.key(0))
    t, t_idx = np.asarray(t), np.asarray(t_idx).astype(np.int64)
    self.assertEqual(set(t_idx.tolist()), set(range(flow.NUM_TIME_LABELS)))
    for w in ('rex', 'img'):
      np.testing.assert_array_equal(t, _time_grid(self.rec, w)[t_idx])


class S2Phase2StepTest(S2Phase1StepTest):
  """``s2_phase2_step``: the first phase-2 step (current_iter 80000)."""

  phase_number = 2
  case = 's2_phase2_step'
  optimizer = 'optimizer_g'
  terms = {
      'loss_l1': {'l_pix': 1.0},
      'loss_decom_img': {'l_recon_in': 1.0},
      'loss_decom_mat': {'l_recon_out': 1.0},
      'loss_flex': {'l_flex': 1.0},
      'loss_velocity_rex': {'l_velocity_rex': 1.0},
      'loss_velocity_img': {'l_velocity_img': 1.0},
      'loss_velocity': {'l_velocity_rex': 0.05, 'l_velocity_img': 0.05},
      'loss_kd_l1': {'r_l_abs_3': 1.0, 'i_l_abs_3': 1.0},
      'kd_kl': {'r_l_kd_3': 1.0, 'i_l_kd_3': 1.0},
  }

  def test_phase_boundary(self):
    """This step is the first of phase 2; the one before is phase 1."""
    s = int(self.state.step)
    self.assertEqual(self.m.phase(self.config, s - 1), 'phase1')
    self.assertEqual(self.m.phase(self.config, s), 'phase2')
    self.assertEqual(self.phase.count_offset, s)


# ----------------------------------------------------------------------------
# IR-Flow.
# ----------------------------------------------------------------------------


class IRFlowStepTest(_StepParity, absltest.TestCase):
  """``irflow_step``: derain settings, iteration 111 (EMA update 111)."""

  net = 'model'
  terms = {'match': {'match': 1.0}, 'msc': {'msc': 1.0}}

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    rec = Record('irflow_step')
    config = irflow_config.get_config('task=derain')
    config.model.variant = 'tiny'  # ConditionalUNet nf 4, depth 4
    cls.rec, cls.config = rec, config
    m = irflow_method.METHOD
    models = m.models(config, training=True)
    img = jnp.zeros((1, _HW, _HW, 3), jnp.float32)
    v = _variables(models['irflow'], rec.sd('model'), img,
                   jnp.zeros((1,), jnp.int32), preset='irflow')
    params = {'model': jax.tree.map(jnp.asarray, v['params'])}
    tx, schedules = m.optimizers(config, params)
    s = rec.meta['current_step'] - 1  # = ema.step before the update
    cls.phase_name = m.phase(config, s)
    cls.project_phase = m.phases(config, models, schedules)[cls.phase_name]
    cls.draws = {'k': rec.data['draws/k'].reshape(-1).astype(np.int32),
                 'msc_steps': rec.data['draws/msc_K'].astype(np.int32)}
    phase = dataclasses.replace(cls.project_phase,
                                draw=_fixed_draws(cls.draws))
    # The reference's batch is B, G, R (OpenCV); the project takes RGB and
    # flips at the network boundary (config.irflow.channel_order='bgr').
    batch = {'lq': jnp.asarray(rec.image('lq', flip=True)),
             'gt': jnp.asarray(rec.image('gt', flip=True))}
    state = _state(params, tx, s)
    cls.replay(phase, state, batch, {})
    cls.phase = phase

  def test_optimizer_and_ema_settings(self):
    _check_optimizer(self, self.rec, self.config)
    c = self.config.irflow
    self.assertEqual(c.channel_order, 'bgr')
    terms = self.rec.meta['loss_terms']
    self.assertEqual(c.msc_weight, terms['msc']['weight_in_total'])
    self.assertEqual(c.match_weight, terms['match']['weight_in_total'])
    self.assertEqual(c.loss_kind, 'l2')
    self.assertTrue(c.cumulative)
    self.assertEqual(self.rec.meta['ema']['ema_step_before'],
                     int(self.state.step))
    decay = float(self.phase.ema_decay(self.state.step))
    self.assertAlmostEqual(decay, self.rec.meta['ema']['decay'], delta=1e-7)
    self.assertAlmostEqual(decay, 1 - 11 ** (-2 / 3), delta=1e-7)

  def test_learning_rate(self):
    _assert_lr(self, self.metrics['lr'], self.rec.meta['lr_used'])

  def test_draw_names(self):
    _check_draws(self, self.project_phase, self.draws)

  def test_msc_steps(self):
    self.assertEqual(int(self.metrics['msc_steps']),
                     int(self.rec.data['draws/msc_K']))


# ----------------------------------------------------------------------------
# Learning rates at the reference's iteration numbers.
# ----------------------------------------------------------------------------


def _ref_cosine_restart_cyclic(last_epoch: int, base: float, periods,
                               weights, eta_mins) -> float:
  """Reti-Diff ``models/lr_scheduler.py:CosineAnnealingRestartCyclicLR``.

  ``get_position_from_periods`` returns the first cycle whose cumulative
  end is ≥ ``last_epoch`` (an end belongs to the cycle it ends).
  """
  ends = np.cumsum(periods).tolist()
  i = next(i for i, e in enumerate(ends) if last_epoch <= e)
  start = 0 if i == 0 else ends[i - 1]
  return eta_mins[i] + weights[i] * 0.5 * (base - eta_mins[i]) * (
      1 + math.cos(math.pi * (last_epoch - start) / periods[i]))


class ScheduleTest(absltest.TestCase):
  """The lr the project applies at the reference's iteration ``it``.

  The project's global step ``s`` is 0-based; the reference's BasicSR loop
  runs ``current_iter = s + 1``. The applied lr is the phase's schedule at
  its optimizer's count ``s − phase.count_offset``.
  """

  def project_lrs(self, method, config, iterations) -> dict[int, float]:
    """The lr of the phase that trains iteration ``it`` (step ``it − 1``),
    at its optimizer's count, for each ``it``."""
    # The optimizers only need the param tree's names.
    x = jnp.zeros(())
    params = {'irflow': {'model': {'x': x}},
              's1': {'model': {'G': {'x': x}},
                     'constraints': {'aniso_s': x, 'hvi_k': x}},
              's2': {'model': {'G': {'x': x}, 'img_denoise': {'x': x}}},
              }[config.stage]
    _, schedules = method.optimizers(config, params)
    phases = method.phases(config, method.models(config), schedules)
    out = {}
    for name, p in phases.items():
      its = [it for it in iterations if method.phase(config, it - 1) == name]
      if its:
        counts = jnp.asarray([it - 1 - p.count_offset for it in its])
        lrs = jax.jit(jax.vmap(p.schedule))(counts)
        out.update(zip(its, np.asarray(lrs).tolist()))
    self.assertEqual(sorted(out), sorted(iterations))
    return out

  def assert_lr(self, got: float, want: float, it: int) -> None:
    self.assertLessEqual(abs(got - want), 1e-6 * want,
                         f'iteration {it}: lr {got:.9g}, reference '
                         f'{want:.9g}')

  def test_s1_cosine_restart(self):
    """BasicSR steps the scheduler before every iteration but the first
    (``update_learning_rate``: ``if current_iter > 1``), so iteration ``it``
    runs at ``last_epoch = it − 1`` (RestoRect trainS1_LLIE_real.yml:80-83).
    """
    c = _restorect_config('s1')
    sch = c.schedule
    its = (1, 2, 46_001, 92_000, 92_001, 92_002, 196_001, 300_000)
    got = self.project_lrs(restorect_method.METHOD, c, its)
    for it in its:
      want = _ref_cosine_restart_cyclic(
          it - 1, c.optim.lr, sch.periods, sch.restart_weights, sch.eta_mins)
      self.assert_lr(got[it], want, it)

  def test_s2_phases(self):
    """``S2_model.py:616-623``: phase 1 while ``it < encoder_iter`` at
    ``lr·0.1^(it // 60000)``, then ``lr·0.5^((it − encoder_iter) // 80000)``
    (trainS2_LLIE_syn.yml:104-111)."""
    c = _restorect_config('s2')
    lr, encoder_iter = c.optim.lr, _ENCODER_ITER
    its = (1, 2, 59_999, 60_000, 60_001, 79_999, 80_000, 80_001, 159_999,
           160_000, 160_001, 240_000)
    got = self.project_lrs(restorect_method.METHOD, c, its)
    for it in its:
      self.assertEqual(
          restorect_method.METHOD.phase(c, it - 1),
          'phase1' if it < encoder_iter else 'phase2', f'iteration {it}')
      if it < encoder_iter:
        want = lr * 0.1 ** (it // 60_000)
      else:
        want = lr * 0.5 ** ((it - encoder_iter) // 80_000)
      self.assert_lr(got[it], want, it)

  def test_irflow_multistep(self):
    """IR-Flow steps ``MultiStepLR_Restart`` after each update (train.py:
    228), so iteration ``it`` runs at ``lr·0.5^#{m : m < it}``."""
    c = irflow_config.get_config('task=derain')
    its = (1, 111, 200_000, 200_001, 200_002, 400_001, 700_000)
    got = self.project_lrs(irflow_method.METHOD, c, its)
    for it in its:
      want = c.optim.lr * 0.5 ** sum(m < it for m in c.schedule.milestones)
      self.assert_lr(got[it], want, it)


if __name__ == '__main__':
  absltest.main()
