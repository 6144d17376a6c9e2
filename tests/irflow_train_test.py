"""IR-Flow training: one step per MSC mode, schedules, EMA, the whole loop."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.core import optim
from restorect_jax import predictors
from restorect_jax import steps as steps_lib
from restorect_jax import train
from restorect_jax.core.train_state import TrainState
import testutil

sys.path.insert(0, str(testutil.REPO))
from configs import irflow  # noqa: E402  pylint: disable=g-import-not-at-top

_B, _P = 2, 16


def setUpModule():
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', False)


def _config(**switches):
  c = irflow.get_config('task=derain,runlocal')
  c.irflow.update(switches)
  return c


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(0.2, 0.9, (_B, _P, _P, 3)).astype(np.float32)
  lq = np.clip(gt + 0.3 * (rng.uniform(size=gt.shape) > 0.9), 0, 1)
  return {'lq': jnp.asarray(lq, jnp.float32), 'gt': jnp.asarray(gt)}


def _one_step(c):
  models = train.build_models(c)
  params = train.init_params(c, models, {})
  tx, schedules = train.make_optimizers(c, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(c.seed))
  fns = steps_lib.make_stage_steps(c, teacher=None, student=models['irflow'],
                                   decom=None, schedules=schedules)
  new, metrics = fns['main'](state, _batch(), {})
  return state, new, jax.device_get(metrics)


def _max_diff(a, b):
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))


class StepTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.results = {m: _one_step(_config(msc_mode=m))
                   for m in ('reference', 'paper', 'off')}

  @parameterized.parameters('reference', 'paper', 'off')
  def test_one_step_per_msc_mode(self, mode):
    old, new, metrics = self.results[mode]
    self.assertTrue(np.isfinite(metrics['loss']), metrics)
    self.assertGreater(_max_diff(old.params, new.params), 0.0)
    self.assertEqual(int(new.step), 1)
    if mode == 'off':
      self.assertEqual(float(metrics['msc']), 0.0)
      self.assertAlmostEqual(float(metrics['loss']),
                             float(metrics['match']), places=6)
    else:
      self.assertBetween(int(metrics['msc_steps']), 2, 10)
      self.assertGreater(float(metrics['msc']), 0.0)
      self.assertAlmostEqual(
          float(metrics['loss']),
          float(metrics['match']) + 0.3 * float(metrics['msc']), places=5)

  def test_reference_mode_updates_equal_msc_off(self):
    # The released code computes MSC under no_grad: identical updates.
    ref, off = self.results['reference'][1], self.results['off'][1]
    self.assertEqual(_max_diff(ref.params, off.params), 0.0)

  def test_paper_mode_changes_the_update(self):
    ref, paper = self.results['reference'][1], self.results['paper'][1]
    self.assertGreater(_max_diff(ref.params, paper.params), 0.0)

  def test_first_ema_update_copies_the_weights(self):
    _, new, _ = self.results['off']
    # runlocal: update_after_step 1, so call 0 copies (ema_pytorch).
    self.assertEqual(_max_diff(new.ema_params, new.params), 0.0)

  def test_constant_velocity_and_base_switches(self):
    _, new, m = _one_step(_config(cumulative=False, msc_mode='off'))
    self.assertTrue(np.isfinite(m['loss']))
    c = _config(base=True, msc_mode='off')
    models = train.build_models(c)
    self.assertNotIn('time_mlp.1', train.init_params(c, models, {})['model'])
    _, _, m = _one_step(c)
    self.assertTrue(np.isfinite(m['loss']))
    del new

  def test_bgr_switch_flips_the_network_channels(self):
    c = _config()
    model = train.build_models(c)['irflow']
    params = train.init_params(c, {'irflow': model}, {})
    x = _batch()['lq']
    k = jnp.array([500], jnp.int32)
    f_bgr = steps_lib.irflow_velocity(model, params['model'],
                                      channel_order='bgr')
    f_rgb = steps_lib.irflow_velocity(model, params['model'],
                                      channel_order='rgb')
    np.testing.assert_allclose(f_bgr(x, k), f_rgb(x[..., ::-1], k)[..., ::-1],
                               atol=1e-6)
    with self.assertRaisesRegex(ValueError, 'channel_order'):
      steps_lib.irflow_velocity(model, params['model'], channel_order='bgra')


class ScheduleTest(absltest.TestCase):

  def test_multistep_halves_from_the_milestone(self):
    s = optim.multistep(1e-4, (200, 400), 0.5)
    got = [float(s(n)) for n in (0, 199, 200, 399, 400, 10**6)]
    np.testing.assert_allclose(got, [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5],
                               rtol=1e-6)

  def test_ema_pytorch_decay(self):
    d = lambda n: float(optim.ema_pytorch_decay(n))
    self.assertEqual(d(0), 0.0)      # copy
    self.assertEqual(d(5), 1.0)      # not an update call: untouched
    self.assertEqual(d(100), 0.0)    # still copying
    self.assertEqual(d(101), 1.0)
    self.assertAlmostEqual(d(110), 1 - 11 ** (-2 / 3), places=6)
    self.assertAlmostEqual(d(10_000), 0.995, places=6)
    # 0.995 is first reached near n = 2.9k (spec §6).
    self.assertLess(d(2_800), 0.995)
    self.assertAlmostEqual(d(3_000), 0.995, places=6)


class LoopTest(absltest.TestCase):

  def test_train_evaluate_restore(self):
    work = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, work, ignore_errors=True)
    c = irflow.get_config('task=demo,runlocal')
    c.input.data_dir = os.path.join(work, 'data')
    res = train.train_and_evaluate(c, os.path.join(work, 'run'))
    self.assertEqual(res['n'], 1)
    self.assertTrue(np.isfinite(res['psnr']))
    # The denoising demo synthesises noisy eval inputs (seeded).
    again = train.evaluate_checkpoint(c, os.path.join(work, 'run'))
    self.assertAlmostEqual(res['psnr'], again['psnr'], places=6)
    p = predictors.from_workdir(os.path.join(work, 'run'))
    self.assertEqual((p.kind, p.multiple, p.stochastic),
                     ('irflow', 16, False))
    img = np.random.default_rng(0).uniform(size=(20, 27, 3)).astype(
        np.float32)
    out = p.restore(img, steps=2, rng=jax.random.key(0))
    self.assertEqual(out.shape, img.shape)
    out2 = p.restore(img, steps=2, rng=jax.random.key(1))
    np.testing.assert_array_equal(out, out2)  # deterministic sampler


if __name__ == '__main__':
  absltest.main()
