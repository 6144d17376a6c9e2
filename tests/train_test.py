"""Training: one step per stage, switches, loss decrease, loop behaviour."""

from __future__ import annotations

import functools
import sys

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from restorect_jax import methods
from restorect_jax.core import optim
from restorect_jax.core.train_state import TrainState
from restorect_jax.methods.restorect import method as restorect_method
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
  return testutil.method_setup(_config('s1')).params['model']


def _setup(c):
  """``testutil.method_setup`` with one cached S2 teacher."""
  teacher = _teacher_params() if c.stage == 's2' else None
  return testutil.method_setup(c, teacher_params=teacher)


def _state_and_steps(c):
  """Frozen nets, a fresh TrainState and the stage's jitted steps."""
  s = _setup(c)
  state = TrainState.create(s.params, s.tx, jax.random.PRNGKey(0))
  return s.frozen, state, s.steps


def _phase_name(c, phase):
  return 'main' if c.stage == 's1' else f'phase{phase}'


def _loss_and_grads(s, name, params, batch, rng):
  """The phase's loss, metrics and gradients on its draws from ``rng``."""
  phase = s.phases[name]
  draws = phase.draw(rng, batch)
  (loss, metrics), g = jax.jit(jax.value_and_grad(phase.loss, has_aux=True))(
      params, batch, s.frozen, draws)
  return loss, metrics, g


def _grads(c, params=None, phase=2, batch=None):
  """Gradients of the stage's loss at init (fixed rng)."""
  s = _setup(c)
  params = s.params if params is None else params
  _, metrics, g = _loss_and_grads(s, _phase_name(c, phase), params,
                                  batch or _batch(), jax.random.PRNGKey(3))
  return g, metrics


def _sub(tree, prefix):
  return [v for k, v in _flat(tree).items() if k.startswith(prefix)]


def _flat(tree):
  return {'.'.join(str(getattr(p, 'key', p)) for p in path): v for path, v in
          jax.tree_util.tree_flatten_with_path(tree)[0]}


def _all_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                  jax.tree.leaves(b)))


def _equal_to_rounding(a, b):
  """Gradients of two programs that differ only in dead terms: equal up to
  float32 rounding (the programs fuse differently; a gradient that leaks
  through a switch moves them by far more)."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(
      np.allclose(x, y, rtol=1e-5, atol=1e-8) for x, y in zip(la, lb))


class OneStepTest(parameterized.TestCase):
  """One step of each stage: finite, frozen parts bit-identical, EMA moved."""

  def _step(self, c, name):
    s = _setup(c)
    state = TrainState.create(s.params, s.tx, jax.random.PRNGKey(0))
    frozen_before = jax.tree.map(np.array, s.frozen)
    new, metrics = s.steps[name](state, _batch(), s.frozen)
    for k, v in metrics.items():
      self.assertTrue(np.isfinite(v), f'{k} = {v}')
    self.assertTrue(_all_equal(s.frozen, frozen_before))  # untouched
    self.assertEqual(int(new.step), 1)
    # The step is the phase's loss on its draws from fold_in(rng, step 0):
    # same loss, same gradient norm (float32 summation order aside).
    loss, _, g = _loss_and_grads(s, name, state.params, _batch(),
                                 jax.random.fold_in(state.rng, 0))
    np.testing.assert_allclose(float(metrics['loss']), float(loss),
                               rtol=1e-5)
    np.testing.assert_allclose(float(metrics['l2_grads']),
                               float(optax.tree.norm(g)), rtol=1e-4)
    return state, new, metrics

  def test_s1(self):
    state, new, m = self._step(_config('s1'), 'main')
    self.assertIn('loss_hvi', m)
    self.assertIn('loss_texture_consistency', m)
    # The constraint parameters are frozen in the reference.
    self.assertTrue(_all_equal(state.params['constraints'],
                               new.params['constraints']))
    self.assertFalse(_all_equal(state.params['model'], new.params['model']))
    # EMA moved, by (1 - optim.ema_decay) of the update.
    d = _config('s1').optim.ema_decay
    self.assertFalse(_all_equal(state.ema_params, new.ema_params))
    a, b, e = (_flat(t)['model.G.img_output.weight'] for t in
               (state.params, new.params, new.ema_params))
    np.testing.assert_allclose(e, d * a + (1 - d) * b, rtol=1e-6,
                               atol=1e-9)
    # The logged lr is the schedule at position 0 (the reference's
    # iteration 1: BasicSR steps this scheduler only from iteration 2).
    sch = _config('s1').schedule
    f = optim.cosine_restart_cyclic(_config('s1').optim.lr, sch.periods,
                                    sch.restart_weights, sch.eta_mins)
    self.assertAlmostEqual(float(m['lr']), float(f(0)), places=10)

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
    s = _setup(_config('s2'))
    self.assertTrue(_all_equal(s.params['model']['G'],
                               s.frozen['teacher']['G']))


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
    self.assertTrue(_equal_to_rounding(g_on, g_off))
    g_kd, _ = _grads(_config('s2', kd_gradient=True))
    self.assertFalse(_equal_to_rounding(
        _sub(g_kd, 'model.img_denoise'), _sub(g_on, 'model.img_denoise')))
    self.assertFalse(_equal_to_rounding(
        _sub(g_kd, 'model.rex_condition'), _sub(g_on, 'model.rex_condition')))

  def test_flex_target(self):
    def g_with(target, weight):
      c = _config('s2', flex_target=target)
      c.losses.flex_weight = weight
      return _grads(c)
    g_p, m_p = g_with('priors', 0.5)
    g_p0, _ = g_with('priors', 0.0)
    # FLEX on priors: no gradient.
    self.assertTrue(_equal_to_rounding(g_p, g_p0))
    g_d, m_d = g_with('decoder', 0.5)
    g_d0, _ = g_with('decoder', 0.0)
    self.assertFalse(_equal_to_rounding(_sub(g_d, 'model.G.decoder_level1'),
                                        _sub(g_d0, 'model.G.decoder_level1')))
    self.assertNotEqual(float(m_p['loss_flex']), float(m_d['loss_flex']))

  def test_learnable_constraints(self):
    g_off, _ = _grads(_config('s1'))
    for v in jax.tree.leaves(g_off['constraints']):
      self.assertEqual(float(v), 0.0)
    g_on, _ = _grads(_config('s1', learnable_constraints=True))
    self.assertNotEqual(float(g_on['constraints']['aniso_s']), 0.0)
    self.assertNotEqual(float(g_on['constraints']['hvi_k']), 0.0)
    self.assertTrue(_equal_to_rounding(g_on['model'], g_off['model']))

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
    self.assertFalse(_equal_to_rounding(
        _sub(g_d, 'model.img_denoise'), _sub(g_c, 'model.img_denoise')))


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
    f = optim.cosine_restart_cyclic(2e-4, [92_000, 208_000], [1, 1],
                                    [2.55e-4, 1e-6])
    self.assertAlmostEqual(float(f(0)), 2e-4, places=10)
    self.assertAlmostEqual(float(f(46_000)), (2e-4 + 2.55e-4) / 2, places=9)
    # A cycle owns its last step (Reti-Diff get_position_from_periods: the
    # first cycle whose cumulative end is >= the position), so the restart
    # comes one step after the end.
    self.assertAlmostEqual(float(f(92_000)), 2.55e-4, places=10)
    self.assertAlmostEqual(float(f(92_001)), 2e-4, places=10)  # restart
    self.assertAlmostEqual(float(f(300_000)), 1e-6, places=10)
    g = optim.step_decay(2e-4, 60_000, 0.1)
    self.assertAlmostEqual(float(g(59_999)), 2e-4, places=10)
    self.assertAlmostEqual(float(g(60_000)), 2e-5, places=10)


def _schedules(c):
  """The method's lr schedules (optimizers built on a one-leaf tree)."""
  params = {'model': {'x': jnp.zeros(1)},
            'constraints': {'aniso_s': jnp.zeros(()),
                            'hvi_k': jnp.zeros(())}}
  return methods.for_config(c).optimizers(c, params)[1]


class IterationCountTest(absltest.TestCase):
  """The reference counts iterations from 1 (issue 14 item 7a).

  Its schedules read that number, one ahead of the 0-based global step,
  and its S2 phase 1 runs while ``current_iter < encoder_iter``:
  ``phase1_steps − 1`` steps. ``schedule.count_from_one=False`` gives the
  plain 0-based reading.
  """

  def test_s1_schedule_runs_at_the_0_based_step(self):
    # BasicSR steps the S1 scheduler only when current_iter > 1, so the
    # reference's iteration it runs at position it − 1: the 0-based step.
    c = restorect_s1.get_config()  # cycles of 92k and 208k (the yml)
    main = _schedules(c)['main']
    f = optim.cosine_restart_cyclic(c.optim.lr, c.schedule.periods,
                                    c.schedule.restart_weights,
                                    c.schedule.eta_mins)
    for step in (0, 45_999, 91_999, 92_000, 92_001, 299_999):
      self.assertAlmostEqual(float(main(step)), float(f(step)), places=10,
                             msg=step)
    self.assertAlmostEqual(float(main(0)), c.optim.lr, places=10)
    self.assertAlmostEqual(float(main(92_000)), 2.55e-4, places=10)

  def test_s2_phase1_lasts_phase1_steps_minus_one(self):
    c = restorect_s2.get_config('dataset=lol_v1')  # 80k phase 1, 60k decay
    m = methods.for_config(c)
    self.assertEqual(c.phase1_steps, 80_000)
    self.assertEqual(restorect_method.phase1_length(c), 79_999)
    self.assertEqual(m.phase(c, 0), 'phase1')
    self.assertEqual(m.phase(c, 79_998), 'phase1')
    self.assertEqual(m.phase(c, 79_999), 'phase2')
    sch = _schedules(c)
    lr = c.optim.lr
    # Phase 1 decays ×0.1 at the reference's iteration 60_000 (step 59_999).
    self.assertAlmostEqual(float(sch['phase1'](59_998)), lr, places=10)
    self.assertAlmostEqual(float(sch['phase1'](59_999)), 0.1 * lr,
                           places=10)
    # Phase 2's optimizer counts from its first step (a fresh optimizer);
    # the logged lr counts from the phase boundary.
    phases = m.phases(c, m.models(c, training=True), sch)
    self.assertEqual(phases['phase2'].count_offset, 79_999)
    self.assertEqual(phases['phase1'].count_offset, 0)
    # ×0.5 every 80k phase-2 steps: phase-2 count 80_000 is step 159_999,
    # the reference's iteration 160_000 = phase1_steps + 80k.
    self.assertAlmostEqual(float(sch['phase2'](79_999)), lr, places=10)
    self.assertAlmostEqual(float(sch['phase2'](80_000)), 0.5 * lr,
                           places=10)

  def test_s2_count_from_zero(self):
    c = restorect_s2.get_config('dataset=lol_v1')
    c.schedule.count_from_one = False
    m = methods.for_config(c)
    self.assertEqual(m.phase(c, 79_999), 'phase1')
    self.assertEqual(m.phase(c, 80_000), 'phase2')
    sch = _schedules(c)
    self.assertAlmostEqual(float(sch['phase1'](59_999)), c.optim.lr,
                           places=10)
    self.assertAlmostEqual(float(sch['phase1'](60_000)), 0.1 * c.optim.lr,
                           places=10)


if __name__ == '__main__':
  absltest.main()
