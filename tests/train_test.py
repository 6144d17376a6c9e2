"""Training: one step per stage, switches, loss decrease, loop behaviour."""

from __future__ import annotations

import functools
import sys

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import steps as steps_lib
from restorect_jax import train
from restorect_jax.core.train_state import TrainState
import testutil

sys.path.insert(0, str(testutil.REPO))
from configs import restorect_s1  # noqa: E402  pylint: disable=g-import-not-at-top
from configs import restorect_s2  # noqa: E402  pylint: disable=g-import-not-at-top

_B, _P = 2, 32


def setUpModule():
  # Compile time dominates these tiny steps (Flax's imagenet train_test does
  # the same); numerics are unaffected beyond float rounding.
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', False)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(0.2, 0.9, (_B, _P, _P, 3)).astype(np.float32)
  return {'lq': jnp.asarray(gt * 0.2), 'gt': jnp.asarray(gt)}


def _config(stage, **switches):
  mod = restorect_s1 if stage == 's1' else restorect_s2
  c = mod.get_config('runlocal')
  c.switches.update(switches)
  return c


@functools.lru_cache(maxsize=None)
def _teacher_params():
  c = _config('s1')
  models = train.build_models(c)
  frozen = _frozen(c)
  return train.init_params(c, models, frozen)['model']


def _frozen(c):
  f = {'decom_low': train.load_decom('', 1, 'low'),
       'decom_high': train.load_decom('', 2, 'high')}
  if c.stage == 's2':
    f['teacher'] = _teacher_params()
  return f


def _setup(c):
  models = train.build_models(c)
  frozen = _frozen(c)
  params = train.init_params(c, models, frozen)
  if c.stage == 's2':
    params['model'] = train.student_from_teacher(params['model'],
                                                 frozen['teacher'])
  return models, frozen, params


def _state_and_steps(c):
  """Models, frozen nets, a fresh TrainState and the stage's jitted steps."""
  models, frozen, params = _setup(c)
  tx, schedules = train.make_optimizers(c, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(0))
  fns = steps_lib.make_stage_steps(c, teacher=models['teacher'],
                                   student=models['student'],
                                   decom=models['decom'], schedules=schedules)
  return frozen, state, fns


def _grads(c, params=None, phase=2, batch=None):
  """Gradients of the stage's loss at init (fixed rng)."""
  models, frozen, p0 = _setup(c)
  params = p0 if params is None else params
  batch = batch or _batch()
  if c.stage == 's1':
    loss = functools.partial(steps_lib.teacher_loss, teacher=models['teacher'],
                             decom=models['decom'], config=c)
    args = (batch, frozen)
  else:
    loss = functools.partial(steps_lib.student_loss, phase=phase,
                             student=models['student'],
                             teacher=models['teacher'],
                             decom=models['decom'], config=c)
    args = (batch, frozen, jax.random.PRNGKey(3))
  (_, metrics), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params,
                                                                     *args)
  return g, metrics


def _sub(tree, prefix):
  return [v for k, v in _flat(tree).items() if k.startswith(prefix)]


def _flat(tree):
  return {'.'.join(str(getattr(p, 'key', p)) for p in path): v for path, v in
          jax.tree_util.tree_flatten_with_path(tree)[0]}


def _all_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                  jax.tree.leaves(b)))


class OneStepTest(parameterized.TestCase):
  """One step of each stage: finite, frozen parts bit-identical, EMA moved."""

  def _step(self, c, name):
    frozen, state, fns = _state_and_steps(c)
    frozen_before = jax.tree.map(np.array, frozen)
    new, metrics = fns[name](state, _batch(), frozen)
    for k, v in metrics.items():
      self.assertTrue(np.isfinite(v), f'{k} = {v}')
    self.assertTrue(_all_equal(frozen, frozen_before))  # untouched
    self.assertEqual(int(new.step), 1)
    return state, new, metrics

  def test_s1(self):
    state, new, m = self._step(_config('s1'), 'main')
    self.assertIn('loss_hvi', m)
    self.assertIn('loss_texture_consistency', m)
    # The constraint parameters are frozen in the reference.
    self.assertTrue(_all_equal(state.params['constraints'],
                               new.params['constraints']))
    self.assertFalse(_all_equal(state.params['model'], new.params['model']))
    # EMA moved, by (1 - 0.999) of the update.
    self.assertFalse(_all_equal(state.ema_params, new.ema_params))
    a, b, e = (_flat(t)['model.G.img_output.weight'] for t in
               (state.params, new.params, new.ema_params))
    np.testing.assert_allclose(e, 0.999 * a + 0.001 * b, rtol=1e-6,
                               atol=1e-9)

  def test_s2_phase1_trains_only_flow(self):
    state, new, m = self._step(_config('s2'), 'phase1')
    self.assertIn('loss_velocity', m)
    self.assertNotIn('loss_l1', m)
    p0, p1 = state.params['model'], new.params['model']
    self.assertTrue(_all_equal(p0['G'], p1['G']))
    for name in ('img_condition', 'rex_condition', 'img_denoise',
                 'rex_denoise'):
      self.assertFalse(_all_equal(p0[name], p1[name]), name)
    self.assertFalse(_all_equal(state.ema_params, new.ema_params))
    # Phase 2's optimizer was not stepped.
    self.assertTrue(_all_equal(state.opt_state['phase2'],
                               new.opt_state['phase2']))

  def test_s2_phase2_trains_everything(self):
    state, new, m = self._step(_config('s2'), 'phase2')
    for k in ('loss_l1', 'loss_flex', 'loss_kd_l1', 'loss_decom_mat'):
      self.assertIn(k, m)
    p0, p1 = state.params['model'], new.params['model']
    for name in ('G', 'img_condition', 'rex_condition', 'img_denoise',
                 'rex_denoise'):
      self.assertFalse(_all_equal(p0[name], p1[name]), name)

  def test_student_g_starts_from_teacher(self):
    _, frozen, params = _setup(_config('s2'))
    self.assertTrue(_all_equal(params['model']['G'], frozen['teacher']['G']))


class SwitchTest(absltest.TestCase):
  """Each paper-vs-code switch changes the gradient (or not) as claimed."""

  def test_kd_gradient(self):
    # Reference: sampled priors are detached, so KD and FLEX add nothing to
    # the gradient; the switch makes them train the flow networks.
    base = dict(kd_gradient=False)
    g_on, _ = _grads(_config('s2', **base))
    c_off = _config('s2', **base)
    c_off.losses.kd_weight = 0.0
    c_off.losses.flex_weight = 0.0
    g_off, _ = _grads(c_off)
    self.assertTrue(_all_equal(g_on, g_off))
    g_kd, _ = _grads(_config('s2', kd_gradient=True))
    self.assertFalse(_all_equal(_sub(g_kd, 'model.img_denoise'),
                                _sub(g_on, 'model.img_denoise')))
    self.assertFalse(_all_equal(_sub(g_kd, 'model.rex_condition'),
                                _sub(g_on, 'model.rex_condition')))

  def test_flex_target(self):
    def g_with(target, weight):
      c = _config('s2', flex_target=target)
      c.losses.flex_weight = weight
      return _grads(c)
    g_p, m_p = g_with('priors', 0.5)
    g_p0, _ = g_with('priors', 0.0)
    self.assertTrue(_all_equal(g_p, g_p0))  # FLEX on priors: no gradient
    g_d, m_d = g_with('decoder', 0.5)
    g_d0, _ = g_with('decoder', 0.0)
    self.assertFalse(_all_equal(_sub(g_d, 'model.G.decoder_level1'),
                                _sub(g_d0, 'model.G.decoder_level1')))
    self.assertNotEqual(float(m_p['loss_flex']), float(m_d['loss_flex']))

  def test_learnable_constraints(self):
    g_off, _ = _grads(_config('s1'))
    for v in jax.tree.leaves(g_off['constraints']):
      self.assertEqual(float(v), 0.0)
    g_on, _ = _grads(_config('s1', learnable_constraints=True))
    self.assertNotEqual(float(g_on['constraints']['aniso_s']), 0.0)
    self.assertNotEqual(float(g_on['constraints']['hvi_k']), 0.0)
    self.assertTrue(_all_equal(g_on['model'], g_off['model']))

  def test_layer_norm_type(self):
    c = _config('s1')
    c.model.layer_norm_type = 'WithBias'
    g_wb, m_wb = _grads(c)
    g_sc, m_sc = _grads(_config('s1'))
    biases = _sub(g_wb, 'model.G.encoder_level1.0.norm1.body.bias')
    self.assertLen(biases, 1)
    self.assertGreater(float(jnp.abs(biases[0]).sum()), 0.0)
    self.assertEmpty(_sub(g_sc, 'model.G.encoder_level1.0.norm1.body.bias'))

  def test_continuous_time(self):
    g_d, m_d = _grads(_config('s2'), phase=1)
    g_c, m_c = _grads(_config('s2', continuous_time=True), phase=1)
    self.assertNotEqual(float(m_d['loss_velocity_img']),
                        float(m_c['loss_velocity_img']))
    self.assertFalse(_all_equal(_sub(g_d, 'model.img_denoise'),
                                _sub(g_c, 'model.img_denoise')))


class LossDecreaseTest(absltest.TestCase):

  def test_s1_loss_decreases_over_20_steps_on_a_fixed_batch(self):
    c = _config('s1')
    c.optim.lr = 1e-3
    c.schedule.periods = (1000, 1000)
    c.schedule.eta_mins = (1e-3, 1e-3)
    frozen, state, fns = _state_and_steps(c)
    fn = fns['main']
    batch, losses = _batch(), []
    for _ in range(20):
      state, m = fn(state, batch, frozen)
      losses.append(float(m['loss']))
    self.assertLess(np.mean(losses[-3:]), 0.7 * np.mean(losses[:3]), losses)


class ScheduleTest(absltest.TestCase):

  def test_cosine_restart_cyclic(self):
    from restorect_jax.core import optim  # pylint: disable=g-import-not-at-top
    f = optim.cosine_restart_cyclic(2e-4, [92_000, 208_000], [1, 1],
                                    [2.55e-4, 1e-6])
    self.assertAlmostEqual(float(f(0)), 2e-4, places=10)
    self.assertAlmostEqual(float(f(46_000)), (2e-4 + 2.55e-4) / 2, places=9)
    self.assertAlmostEqual(float(f(92_000)), 2e-4, places=10)  # restart
    self.assertAlmostEqual(float(f(300_000)), 1e-6, places=10)
    g = optim.step_decay(2e-4, 60_000, 0.1)
    self.assertAlmostEqual(float(g(59_999)), 2e-4, places=10)
    self.assertAlmostEqual(float(g(60_000)), 2e-5, places=10)


if __name__ == '__main__':
  absltest.main()
