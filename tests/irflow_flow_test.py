"""IR-Flow rectified-flow math: schedules, samplers, losses, MSC modes."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from scipy import ndimage

from restorect_jax.methods.irflow import flow as irf
from restorect_jax.methods.irflow import losses as irl

_SHAPE = (2, 6, 5, 3)  # (B, H, W, C)
# Every N the spec's oracle check and sweeps cover (spec §5).
_SWEEP = (1, 2, 3, 4, 5, 6, 7, 10, 20, 50)


def _images(seed=0, shape=_SHAPE):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return (jax.random.uniform(k1, shape), jax.random.uniform(k2, shape))


def _init_params(seed=1, c=3):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  return {'w': 0.3 * jax.random.normal(k1, (c, c)),
          'b': 0.1 * jax.random.normal(k2, (c,)),
          'tw': 0.5 + 0.1 * jax.random.normal(k3, ())}


def _model(params, x, k):
  """A tiny time-conditioned per-pixel linear velocity model."""
  v = jnp.einsum('bhwc,cd->bhwd', x, params['w']) + params['b']
  if k is not None:
    t = jnp.asarray(k).astype(jnp.float32).reshape(-1, 1, 1, 1) / 1000
    v = v + params['tw'] * t * x
  return v


def _recorder(fn=None):
  """Wraps a velocity callable; records the Python times it is fed."""
  seen = []
  def f(x, k):
    seen.append(np.asarray(k).tolist())
    return jnp.zeros_like(x) if fn is None else fn(x, k)
  return f, seen


class ScheduleTest(parameterized.TestCase):

  def test_hand_tuned_and_uniform_tables(self):
    want_k = {
        1: [1000], 2: [1000, 200], 3: [1000, 200, 100],
        4: [1000, 500, 250, 50], 5: [1000, 800, 600, 400, 200],
        6: [1000, 833, 666, 500, 333, 166],
        7: [1000, 857, 714, 571, 428, 285, 142],
        10: list(range(1000, 0, -100)), 20: list(range(1000, 0, -50)),
        50: list(range(1000, 0, -20)),
    }
    want_w = {1: [1.0], 2: [0.8, 1.0], 3: [0.8, 0.5, 1.0],
              4: [0.5, 0.5, 0.8, 1.0]}
    for n, ks in want_k.items():
      sched = irf.euler_schedule(n)
      self.assertEqual([k for _, k in sched], ks, n)
      ws = want_w.get(n, [1.0 / i for i in range(n, 0, -1)])
      self.assertEqual([w for w, _ in sched], ws, n)
      self.assertTrue(all(isinstance(k, int) for _, k in sched))

  def test_uniform_time_rounds_through_float32_like_torch(self):
    # torch.tensor(19 * (1000 / 19)) is float32 1000.0 although the float64
    # product is 999.9999999999999; the reference then truncates.
    self.assertEqual(19 * (1000 / 19), 999.9999999999999)
    ks = [k for _, k in irf.euler_schedule(19)]
    self.assertEqual(ks[:3], [1000, 947, 894])
    self.assertEqual(irf.euler_schedule(38)[19][1], 500)

  def test_invalid_step_counts(self):
    for fn in (irf.euler_schedule, irf.uniform_schedule):
      with self.assertRaises(ValueError):
        fn(0)
    with self.assertRaises(ValueError):
      irf.heun_sample(lambda x, k: x, jnp.zeros((1, 2, 2, 1)), 0)

  def test_msc_lookup_table(self):
    want = {2: [1000, 500], 3: [1000, 666, 333], 4: [1000, 750, 500, 250],
            5: [1000, 800, 600, 400, 200],
            6: [1000, 833, 666, 500, 333, 166],
            7: [1000, 857, 714, 571, 428, 285, 142],
            8: [1000, 875, 750, 625, 500, 375, 250, 125],
            9: [1000, 888, 777, 666, 555, 444, 333, 222, 111],
            10: list(range(1000, 0, -100))}
    self.assertEqual(irf.MSC_K_TABLE.shape, (11, 10))
    for k, row in want.items():
      np.testing.assert_array_equal(irf.MSC_K_TABLE[k, :k], row)
      np.testing.assert_array_equal(irf.MSC_K_TABLE[k, k:], 0)
      np.testing.assert_array_equal(
          irf.MSC_W_TABLE[k, :k],
          np.float32([1.0 / i for i in range(k, 0, -1)]))
      np.testing.assert_array_equal(irf.MSC_W_TABLE[k, k:], 0)


class ForwardProcessTest(absltest.TestCase):

  def test_endpoints_and_targets(self):
    lq, gt = _images()
    zeros, full = jnp.zeros(2, jnp.int32), jnp.full(2, 1000, jnp.int32)
    x0 = irf.interpolate(lq, gt, zeros)
    np.testing.assert_array_equal(x0, gt)
    np.testing.assert_array_equal(irf.velocity_target(lq, gt, x0), 0.0)
    x1 = irf.interpolate(lq, gt, full)
    np.testing.assert_array_equal(x1, lq)
    np.testing.assert_array_equal(irf.velocity_target(lq, gt, x1),
                                  lq - gt)
    np.testing.assert_array_equal(
        irf.velocity_target(lq, gt, x0, cumulative=False), lq - gt)

  def test_fixture_shaped_times(self):
    # The loss fixture stores k as int64 (B, 1, 1, 1) = [700, 130].
    lq, gt = _images()
    k = np.array([700, 130], np.int64).reshape(2, 1, 1, 1)
    x_t = irf.interpolate(lq, gt, k)
    t = np.float32([0.7, 0.13]).reshape(2, 1, 1, 1)
    np.testing.assert_allclose(x_t, t * lq + (1 - t) * gt, atol=1e-7)
    np.testing.assert_array_equal(
        x_t, irf.interpolate(lq, gt, jnp.array([700, 130])))
    # t is the correctly rounded float32 k / 1000 (torch's division), not
    # k · float32(0.001): 0.7, not 0.70000005.
    ones = jnp.ones((1, 1, 1, 1))
    t_all = irf.interpolate(ones, 0 * ones, jnp.arange(1001))
    np.testing.assert_array_equal(
        t_all.ravel(), np.arange(1001, dtype=np.float32) / np.float32(1000))
    self.assertEqual(float(irf.interpolate(ones, 0 * ones, k)[0, 0, 0, 0]),
                     float(np.float32(0.7)))
    # A (1,) time broadcasts over the batch.
    np.testing.assert_array_equal(
        irf.interpolate(lq, gt, jnp.array([700])),
        irf.interpolate(lq, gt, jnp.array([700, 700])))

  def test_sample_k_is_inclusive(self):
    k = irf.sample_k(jax.random.key(0), 20000)
    self.assertEqual(k.shape, (20000,))
    self.assertEqual(k.dtype, jnp.int32)
    self.assertEqual(int(k.min()), 0)
    self.assertEqual(int(k.max()), 1000)


class SamplerTest(parameterized.TestCase):

  def test_euler_feeds_schedule_times(self):
    for n in (1, 3, 4, 6):
      f, seen = _recorder()
      irf.euler_sample(f, jnp.zeros((2, 2, 2, 1)), n)
      self.assertEqual(seen, [[k] for _, k in irf.euler_schedule(n)])

  def test_euler_time_is_int32_of_shape_1(self):
    shapes = []
    def f(x, k):
      shapes.append((k.shape, k.dtype))
      return x
    irf.euler_sample(f, jnp.zeros((2, 2, 2, 1)), 5)
    self.assertEqual(set(shapes), {((1,), np.dtype('int32'))})

  @parameterized.parameters(*_SWEEP)
  def test_euler_oracles_reach_gt(self, n):
    lq, gt = _images()
    residual = lambda x, k: x - gt
    np.testing.assert_allclose(irf.euler_sample(residual, lq, n), gt,
                               atol=2e-6)
    # The linear oracle t·(lq − gt) is fed the truncated k, so it is exact
    # only where every k is (not N = 6, 7: 833 ≠ 833.3…); the remaining
    # fraction of lq − gt follows the schedule in float64.
    linear = lambda x, k: (k.astype(jnp.float32) / 1000).reshape(
        -1, 1, 1, 1) * (lq - gt)
    rest = 1.0
    for w, k in irf.euler_schedule(n):
      rest -= w * k / 1000
    if n not in (6, 7):
      self.assertAlmostEqual(rest, 0.0, places=12)
    else:
      self.assertGreater(abs(rest), 1e-4)
    np.testing.assert_allclose(irf.euler_sample(linear, lq, n),
                               gt + rest * (lq - gt), atol=2e-6)

  def test_euler_jits_with_static_steps(self):
    lq, gt = _images()
    run = jax.jit(lambda x: irf.euler_sample(lambda y, k: y - gt, x, 5))
    np.testing.assert_allclose(run(lq), gt, atol=2e-6)

  def test_heun_coverage_with_the_exact_oracle(self):
    # x_lq = 1, x_gt = 0: the output is the uncovered fraction.
    lq, gt = jnp.ones((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1))
    f = lambda x, k: x - gt
    for n, pct in ((2, 100.0), (3, 77.4), (5, 85.5), (10, 92.4)):
      out = irf.heun_sample(f, lq, n)
      coverage = 100 * (1 - float(out.mean()))
      self.assertAlmostEqual(coverage, pct, delta=0.05, msg=n)
      # Each step i multiplies the error by 1 - w + w²/2, w = 1/i.
      if n > 2:
        want = np.prod([1 - 1 / i + 0.5 / i**2 for i in range(1, n + 1)])
        np.testing.assert_allclose(out, want, rtol=1e-6)

  def test_heun_times(self):
    f, seen = _recorder()
    irf.heun_sample(f, jnp.zeros((1, 2, 2, 1)), 2)
    self.assertEqual(seen, [[1000], [550], [450]])
    f, seen = _recorder()
    irf.heun_sample(f, jnp.zeros((1, 2, 2, 1)), 3)
    self.assertEqual(seen, [[1000], [666], [666], [333], [333], [0]])
    f, seen = _recorder()
    irf.heun_sample(f, jnp.zeros((1, 2, 2, 1)), 1)
    self.assertEqual(seen, [[1000]])

  def test_heun_n2_values(self):
    lq, _ = _images()
    f = lambda x, k: 0.1 * x * k.astype(jnp.float32)[0] / 1000
    x_mid = lq - 0.5 * f(lq, jnp.array([1000]))
    want = x_mid - 0.5 * (f(x_mid, jnp.array([550]))
                          + f(x_mid, jnp.array([450])))
    np.testing.assert_allclose(irf.heun_sample(f, lq, 2), want, rtol=1e-6)

  def test_standard_euler(self):
    lq, gt = _images()
    f, seen = _recorder(lambda x, k: lq - gt)
    out = irf.standard_euler_sample(f, lq, 4)
    self.assertEqual(seen, [[1000], [750], [500], [250]])
    # Exact for the constant velocity it assumes.
    np.testing.assert_allclose(out, gt, atol=2e-6)


_SAMPLERS = {'euler': irf.euler_sample, 'heun': irf.heun_sample,
             'standard_euler': irf.standard_euler_sample}


class TracedStepsTest(parameterized.TestCase):
  """A traced N: the host's schedules, one compiled program for every N."""

  def test_uniform_time_equals_the_host_rounding(self):
    # uniform_time (int32) against _uniform_time (torch's float64 → float32
    # → truncate) for every N ≤ 1000 and every i = 0…N.
    max_n = 1000
    n = np.arange(1, max_n + 1, dtype=np.int32)[:, None]
    i = np.arange(max_n + 1, dtype=np.int32)[None, :]
    got = np.asarray(jax.jit(irf.uniform_time)(i, n))
    for row in range(max_n):
      want = [irf._uniform_time(j, row + 1) for j in range(row + 2)]
      np.testing.assert_array_equal(got[row, :row + 2], want,
                                    err_msg=f'N={row + 1}')
    # The documented limit: the first (N, i) where they part.
    self.assertEqual(irf._uniform_time(27431, 32773), 837)
    self.assertEqual(int(irf.uniform_time(27431, 32773)), 836)

  def test_reciprocal_rounds_like_the_host(self):
    # Both sides of the 4096-entry table (beyond it: division, exact on CPU).
    i = np.arange(1, 5001, dtype=np.int32)
    got = np.asarray(jax.jit(irf.reciprocal)(i))
    np.testing.assert_array_equal(
        got, np.float32([1.0 / k for k in range(1, 5001)]))

  def test_euler_step_equals_the_schedule(self):
    max_n = 1000
    n = np.arange(1, max_n + 1, dtype=np.int32)[:, None]
    j = np.arange(max_n, dtype=np.int32)[None, :]
    w, k = map(np.asarray, jax.jit(irf.euler_step)(j, n))
    for row in range(max_n):
      sched = irf.euler_schedule(row + 1)
      np.testing.assert_array_equal(k[row, :row + 1], [k for _, k in sched],
                                    err_msg=f'N={row + 1}')
      np.testing.assert_array_equal(
          w[row, :row + 1], np.float32([w for w, _ in sched]),
          err_msg=f'N={row + 1}')

  def test_uniform_step_equals_the_msc_tables(self):
    for n in range(1, irf.MSC_MAX_STEPS + 1):
      w, k = irf.uniform_step(jnp.arange(n), n)
      np.testing.assert_array_equal(k, irf.MSC_K_TABLE[n, :n])
      np.testing.assert_array_equal(w, irf.MSC_W_TABLE[n, :n])

  @parameterized.parameters(*_SAMPLERS)
  def test_traced_equals_unrolled_in_one_program(self, name):
    # The network runs on the host (pure_callback), so both programs compute
    # it identically and any difference is the sampler's own arithmetic.
    # (A jnp network is not enough: XLA constant-folds the unrolled loop's
    # times and contracts different multiply-adds, a few ulps apart.)
    sampler = _SAMPLERS[name]
    lq, _ = _images()
    w = np.asarray(_init_params()['w'])
    def host(x, k):
      t = np.float32(k[0]) / np.float32(1000)
      return (np.tanh(x @ w) + t * x).astype(np.float32)
    def f(x, k):
      return jax.pure_callback(
          host, jax.ShapeDtypeStruct(x.shape, x.dtype), x, k)
    traces = []
    def traced(x, n):
      traces.append(1)
      return sampler(f, x, n)
    run = jax.jit(traced)
    unrolled = jax.jit(lambda x, n: sampler(f, x, n), static_argnums=1)
    for n in (*range(1, 13), 19, 20, 50):
      np.testing.assert_array_equal(run(lq, jnp.int32(n)), unrolled(lq, n),
                                    err_msg=f'{name} N={n}')
    self.assertLen(traces, 1)
    self.assertEqual(run._cache_size(), 1)

  def test_traced_samplers_feed_the_host_times(self):
    def recorder():
      seen = []
      def f(x, k):
        jax.debug.callback(lambda kk: seen.append(int(kk[0])), k,
                           ordered=True)
        return jnp.zeros_like(x)
      return f, seen
    x = jnp.zeros((1, 2, 2, 1))
    heun_times = {1: [1000], 2: [1000, 550, 450],
                  3: [1000, 666, 666, 333, 333, 0]}
    for name, ns in (('euler', (1, 2, 3, 4, 6, 19)), ('heun', (1, 2, 3)),
                     ('standard_euler', (4, 19))):
      f, seen = recorder()
      run = jax.jit(lambda x, n, s=_SAMPLERS[name], f=f: s(f, x, n))
      for n in ns:
        seen.clear()
        run(x, jnp.int32(n))
        jax.effects_barrier()
        if name == 'heun':
          want = heun_times[n]
        elif name == 'euler':
          want = [k for _, k in irf.euler_schedule(n)]
        else:
          want = [irf._uniform_time(i, n) for i in range(n, 0, -1)]
        self.assertEqual(seen, want, f'{name} N={n}')


class MatchingLossTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    # Two samples of two elements; diffs (0.5, -2) and (0, 3).
    self.target = jnp.zeros((2, 1, 2, 1))
    self.pred = jnp.array([0.5, -2.0, 0.0, 3.0]).reshape(2, 1, 2, 1)

  def test_hand_values(self):
    # l1: (0.5 + 2)/2 = 1.25, (0 + 3)/2 = 1.5 → 1.375.
    # l2: (0.25 + 4)/2 = 2.125, 9/2 = 4.5 → 3.3125.
    # sl1 (β 1): (0.125 + 1.5)/2 = 0.8125, (0 + 2.5)/2 = 1.25 → 1.03125.
    for kind, want in (('l1', 1.375), ('l2', 3.3125), ('sl1', 1.03125)):
      got = irl.matching_loss(self.pred, self.target, kind)
      self.assertEqual(got.shape, ())
      self.assertAlmostEqual(float(got), want, places=6, msg=kind)
    self.assertAlmostEqual(
        float(irl.matching_loss(self.pred, self.target)), 3.3125, places=6)

  def test_unknown_kind(self):
    with self.assertRaises(ValueError):
      irl.matching_loss(self.pred, self.target, 'l3')

  def test_ssim_identical_is_zero(self):
    a, _ = _images(shape=(2, 16, 16, 3))
    np.testing.assert_allclose(irl.matching_loss(a, a, 'ssim'), 0.0,
                               atol=1e-6)

  def test_ssim_matches_numpy(self):
    a, b = _images(shape=(2, 14, 13, 3))
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x = np.arange(11) - 5
    g = np.exp(-x**2 / (2 * 1.5**2))
    win = np.outer(g, g) / g.sum()**2
    blur = lambda z: ndimage.correlate(z, win, mode='constant', cval=0.0)
    per_sample = []
    for s in range(2):
      vals = []
      for c in range(3):
        p, q = a[s, :, :, c], b[s, :, :, c]
        m1, m2 = blur(p), blur(q)
        v1, v2 = blur(p * p) - m1**2, blur(q * q) - m2**2
        v12 = blur(p * q) - m1 * m2
        ssim = ((2 * m1 * m2 + 1e-4) * (2 * v12 + 9e-4)
                / ((m1**2 + m2**2 + 1e-4) * (v1 + v2 + 9e-4)))
        vals.append(ssim)
      per_sample.append(1 - np.mean(vals))
    got = irl.matching_loss(jnp.float32(a), jnp.float32(b), 'ssim')
    np.testing.assert_allclose(got, np.mean(per_sample), rtol=1e-5)
    self.assertGreater(float(got), 0.5)


class MscTest(parameterized.TestCase):

  def test_rollout_oracle_static_and_traced(self):
    lq, gt = _images()
    f = lambda x, k: x - gt
    run = jax.jit(lambda x, n: irf.msc_rollout(f, x, n))
    for n in range(2, 11):
      np.testing.assert_allclose(irf.msc_rollout(f, lq, n), gt, atol=2e-6)
      np.testing.assert_allclose(run(lq, jnp.int32(n)), gt, atol=2e-6)

  def test_rollout_is_uniform_for_small_k(self):
    f, seen = _recorder()
    irf.msc_rollout(f, jnp.zeros((1, 2, 2, 1)), 2)
    self.assertEqual(seen, [[1000], [500]])  # not the (1000, 200) table

  def test_traced_k_runs_k_evaluations_in_one_program(self):
    lq, _ = _images()
    calls, traces = [], []
    def f(x, k):
      jax.debug.callback(lambda kk: calls.append(int(kk[0])), k)
      return 0.1 * x
    def rollout(x, n):
      traces.append(1)
      return irf.msc_rollout(f, x, n)
    run = jax.jit(rollout)
    for n in (2, 5, 10):
      calls.clear()
      out = run(lq, jnp.int32(n))
      jax.effects_barrier()
      self.assertEqual(calls, irf.MSC_K_TABLE[n, :n].tolist())
      want = lq * np.prod([1 - 0.1 / i for i in range(1, n + 1)])
      np.testing.assert_allclose(out, want, rtol=1e-6)
    self.assertLen(traces, 1)

  def _unrolled_loss(self, params, lq, gt, n):
    x = lq
    for i in range(n, 0, -1):
      x = x - (1.0 / i) * _model(params, x, jnp.array([int(i * 1000 / n)]))
    return jnp.mean(jnp.square(x - gt))

  def test_modes(self):
    lq, gt = _images()
    params = _init_params()
    n = 3
    def loss(p, k, mode):
      return irl.msc_loss(lambda x, t: _model(p, x, t), lq, gt, k,
                          mode=mode)
    @jax.jit
    def all_modes(p, k):
      vg = jax.value_and_grad(loss)
      return {'paper_traced': vg(p, k, 'paper'),
              'paper_static': vg(p, n, 'paper'),
              'reference': vg(p, k, 'reference'),
              'unrolled': jax.value_and_grad(self._unrolled_loss)(
                  p, lq, gt, n)}
    got = all_modes(params, jnp.int32(n))
    want_val, want_grad = got['unrolled']
    self.assertGreater(float(jnp.abs(want_grad['tw'])), 1e-4)
    for mode in ('paper_traced', 'paper_static'):
      val, grad = got[mode]
      np.testing.assert_allclose(val, want_val, rtol=1e-6, err_msg=mode)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                           atol=1e-7),
                   grad, want_grad)
    # 'reference': the same value, zero gradient.
    val, grad = got['reference']
    np.testing.assert_allclose(val, want_val, rtol=1e-6)
    for g in jax.tree.leaves(grad):
      np.testing.assert_array_equal(g, 0.0)

  def test_off_never_calls_the_model(self):
    def boom(x, k):
      raise AssertionError('model called')
    lq, gt = _images()
    out = irl.msc_loss(boom, lq, gt, 5, mode='off')
    self.assertEqual(float(out), 0.0)
    draws = irl.draw_training(jax.random.key(0), 2, lq.shape, msc=False)
    out = irl.training_loss(lambda x, k: x, lq, gt, draws,
                            msc_mode='off')[1]['msc']
    self.assertEqual(float(out), 0.0)

  def test_unknown_mode(self):
    lq, gt = _images()
    with self.assertRaises(ValueError):
      irl.msc_loss(lambda x, k: x, lq, gt, 3, mode='nograd')
    with self.assertRaises(ValueError):
      irl.training_loss(lambda x, k: x, lq, gt,
                        irl.draw_training(jax.random.key(0), 2, lq.shape),
                        msc_mode='nograd')


class TrainingLossTest(absltest.TestCase):

  def test_matching_term_by_hand(self):
    lq, gt = _images()
    params = _init_params()
    rng = jax.random.key(3)
    shapes = []
    def f(x, k):
      shapes.append(k.shape)
      return _model(params, x, k)
    @jax.jit
    def run(rng):
      draws = irl.draw_training(rng, 2, lq.shape)
      return {'default': irl.training_loss(f, lq, gt, draws),
              'options': irl.training_loss(
                  f, lq, gt, draws, cumulative=False, loss_kind='l1',
                  match_weight=2.0, msc_weight=0.0)}
    got = run(rng)
    # Matching term with k (B,), one traced MSC step inside the scan with
    # k (1,); msc_weight 0 skips the rollout.
    self.assertEqual(shapes, [(2,), (1,), (2,)])
    # The documented key split: noise, k, K.
    _, k_rng, msc_rng = jax.random.split(rng, 3)
    k = irf.sample_k(k_rng, 2)
    steps = int(jax.random.randint(msc_rng, (), 2, 11))
    x_t = irf.interpolate(lq, gt, k)
    pred = _model(params, x_t, k)

    loss, m = got['default']
    for v in m.values():
      self.assertEqual(v.shape, ())
    self.assertEqual(int(m['msc_steps']), steps)
    np.testing.assert_allclose(m['match'],
                               jnp.mean(jnp.square(pred - (x_t - gt))),
                               rtol=1e-6)
    msc = irl.msc_loss(lambda x, k: _model(params, x, k), lq, gt, steps,
                       mode='reference')
    np.testing.assert_allclose(m['msc'], msc, rtol=1e-5)
    np.testing.assert_allclose(loss, m['match'] + 0.3 * m['msc'],
                               rtol=1e-6)
    # Deterministic for a fixed key.
    again = run(rng)['default']
    self.assertEqual(float(loss), float(again[0]))

    loss, m = got['options']
    want = jnp.mean(jnp.abs(pred - (lq - gt)))
    np.testing.assert_allclose(m['match'], want, rtol=1e-6)
    np.testing.assert_allclose(loss, 2 * want, rtol=1e-6)
    self.assertEqual(float(m['msc']), 0.0)
    self.assertEqual(int(m['msc_steps']), 0)

  def test_reference_mode_gradient_equals_off(self):
    lq, gt = _images()
    params = _init_params()
    def loss_fn(p, rng, mode):
      draws = irl.draw_training(rng, 2, lq.shape)
      return irl.training_loss(lambda x, k: _model(p, x, k), lq, gt, draws,
                               msc_mode=mode)
    vg = jax.value_and_grad(loss_fn, has_aux=True)
    got = jax.jit(lambda p, rng: {m: vg(p, rng, m) for m in irf.MSC_MODES})(
        params, jax.random.key(7))
    grads = {}
    for mode, ((loss, m), grads[mode]) in got.items():
      np.testing.assert_allclose(loss, m['match'] + 0.3 * m['msc'],
                                 rtol=1e-6)
      if mode != 'off':
        self.assertGreater(float(m['msc']), 0.0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                         atol=1e-8),
                 grads['reference'], grads['off'])
    diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                        grads['paper'], grads['off'])
    self.assertGreater(max(jax.tree.leaves(diff)), 1e-4)

  def test_base_is_discriminative(self):
    lq, gt = _images()
    params = _init_params()
    seen = []
    def f(x, k):
      seen.append((x, k))
      return _model(params, x, k)
    draws = irl.draw_training(jax.random.key(0), 2, lq.shape, msc=False)
    loss, m = irl.training_loss(f, lq, gt, draws, base=True)
    self.assertLen(seen, 1)
    np.testing.assert_array_equal(seen[0][0], lq)
    self.assertIsNone(seen[0][1])
    want = jnp.mean(jnp.square(_model(params, lq, None) - gt))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    self.assertEqual(float(m['msc']), 0.0)
    self.assertEqual(int(m['msc_steps']), 0)

  def test_synthesised_noise(self):
    # base=True with an identity model: loss = mean((x_lq - x_gt)²) = σ̂².
    gt = jnp.full((2, 32, 32, 3), 0.05)
    ignored = jnp.full_like(gt, 9.0)
    sigma = 25 / 255
    @jax.jit
    def lq_of(rng):
      seen = []
      def f(x, k):
        seen.append(x)
        return x
      draws = irl.draw_training(rng, 2, gt.shape, noise_sigma=sigma,
                                msc=False)
      irl.training_loss(f, ignored, gt, draws, base=True, noise_sigma=sigma)
      return seen[0]
    lq0, lq0b, lq1 = (lq_of(jax.random.key(i)) for i in (0, 0, 1))
    noise = np.asarray(lq0 - gt)
    self.assertAlmostEqual(noise.std(), sigma, delta=0.05 * sigma)
    self.assertLess(abs(noise.mean()), 0.05 * sigma)
    self.assertLess(float(lq0.min()), 0.0)  # not clipped
    np.testing.assert_array_equal(lq0, lq0b)
    self.assertFalse(np.allclose(lq0, lq1))


if __name__ == '__main__':
  absltest.main()
