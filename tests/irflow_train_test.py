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

from restorect_jax import train
from restorect_jax.core import optim
from restorect_jax.core.train_state import TrainState
from restorect_jax.data import sources
from restorect_jax.inference import loading
from restorect_jax.inference.predictor import name_tag
from restorect_jax.methods.irflow import steps as steps_lib
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
  s = testutil.method_setup(c)
  state = TrainState.create(s.params, s.tx, jax.random.PRNGKey(c.seed))
  new, metrics = s.steps['main'](state, _batch(), {})
  return state, new, jax.device_get(metrics), _hand_match(c, s, state)


def _hand_match(c, setup, state):
  """The step's matching loss written out from its definition (spec §3).

  The step's draws (``fold_in(rng, step 0)``), ``t = k / 1000``, ``x_t = t
  x_lq + (1 − t) x_gt``, the target of the config's switches (``x_t − x_gt``
  cumulative, ``x_lq − x_gt`` constant, ``x_gt`` for the baseline), MSE.
  """
  b = _batch()
  draws = steps_lib.draw(jax.random.fold_in(state.rng, 0), b, config=c)
  f = steps_lib.irflow_velocity(
      setup.train_models['irflow'], state.params['model'],
      channel_order=c.irflow.channel_order, base=c.irflow.base)
  lq, gt = np.asarray(b['lq']), np.asarray(b['gt'])
  if c.irflow.base:
    pred, target = f(lq, None), gt
  else:
    k = np.asarray(draws['k']).reshape(-1)
    t = (k.astype(np.float32) / np.float32(1000)).reshape(-1, 1, 1, 1)
    x_t = t * lq + (1 - t) * gt
    target = x_t - gt if c.irflow.cumulative else lq - gt
    pred = f(jnp.asarray(x_t), jnp.asarray(k, jnp.int32))
  return float(np.mean((np.asarray(pred, np.float64) - target) ** 2))


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
    old, new, metrics, match = self.results[mode]
    # float32 jitted step vs this float64 mean: ~1e-7 relative.
    np.testing.assert_allclose(float(metrics['match']), match, rtol=1e-5)
    self.assertGreater(_max_diff(old.params, new.params), 0.0)
    self.assertEqual(int(new.step), 1)
    if mode == 'off':
      self.assertEqual(float(metrics['msc']), 0.0)
      self.assertAlmostEqual(float(metrics['loss']),
                             float(metrics['match']), places=6)
    else:
      self.assertBetween(int(metrics['msc_steps']), 2, 10)
      self.assertGreater(float(metrics['msc']), 0.0)
      # 0.3: the derain MSC weight (configs/irflow.py TASKS).
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
    _, new, _, _ = self.results['off']
    # runlocal: update_after_step 1, so call 0 copies (ema_pytorch).
    self.assertEqual(_max_diff(new.ema_params, new.params), 0.0)

  def test_constant_velocity_and_base_switches(self):
    # Each switch changes the regression target (see _hand_match).
    _, _, m, match = _one_step(_config(cumulative=False, msc_mode='off'))
    np.testing.assert_allclose(float(m['loss']), match, rtol=1e-5)
    c = _config(base=True, msc_mode='off')
    s = testutil.method_setup(c)
    self.assertNotIn('time_mlp.1', s.params['model'])
    _, _, m, match = _one_step(c)
    np.testing.assert_allclose(float(m['loss']), match, rtol=1e-5)

  def test_bgr_switch_flips_the_network_channels(self):
    c = _config()
    s = testutil.method_setup(c)
    model, params = s.models['irflow'], s.params
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
    run = os.path.join(work, 'run')
    res = train.train_and_evaluate(c, run)
    self.assertEqual((res['method'], res['n'], res['weights']),
                     ('irflow', 1, 'ema'))
    # The denoising demo synthesises noisy eval inputs (seeded), so
    # --mode=eval of the saved checkpoint reports the training eval.
    again = train.evaluate_checkpoint(c, run)
    self.assertAlmostEqual(res['irflow']['psnr'], again['irflow']['psnr'],
                           places=6)
    p = loading.from_workdir(run)
    self.assertEqual((p.method, p.multiple, p.stochastic),
                     ('irflow', 16, False))
    # The logged PSNR by hand: the first eval image, its noisy input
    # gt + σ·N(0, 1) from default_rng([seed 0, name tag]) (the evaluator's
    # rule), one Euler step, clip, round to uint8, 1-px crop (the irflow
    # protocol, IR-Flow test.py), PSNR of the RGB mean squared error.
    rec = next(iter(sources.eval_records(c, run)))
    name = rec['name']
    name = name.decode() if isinstance(name, bytes) else str(name)
    gt = np.asarray(rec['gt'], np.float32)
    noise = np.random.default_rng([0, name_tag(name)]).standard_normal(
        gt.shape).astype(np.float32)
    lq = gt + np.float32(c.evals.noise_sigma) * noise
    out = p.predict(lq, name=name, steps=1)
    out8 = np.round(out * 255).astype(np.float64)[1:-1, 1:-1]
    gt8 = np.round(gt * 255).astype(np.float64)[1:-1, 1:-1]
    want = 10 * np.log10(255.0**2 / np.mean((out8 - gt8) ** 2))
    self.assertAlmostEqual(res['irflow']['psnr'], want, places=4)
    img = np.random.default_rng(0).uniform(size=(20, 27, 3)).astype(
        np.float32)
    out = p.predict(img, steps=2, seed=0)
    self.assertEqual(out.shape, img.shape)
    out2 = p.predict(img, steps=2, seed=1)
    np.testing.assert_array_equal(out, out2)  # deterministic sampler


if __name__ == '__main__':
  absltest.main()
