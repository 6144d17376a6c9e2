"""Rectified-flow math: labels, interpolant, Euler sampler."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.methods.restorect import flow


class FlowTest(absltest.TestCase):

  def test_time_labels_match_reference(self):
    # spec §2.6, computed in float64 by the reference.
    want = {1: [3], 2: [3, 1], 3: [3, 2, 1], 4: [3, 2, 1, 0],
            5: [3, 2, 1, 1, 0], 6: [3, 2, 2, 1, 1, 0],
            7: [3, 2, 2, 1, 1, 0, 0], 8: [3, 2, 2, 1, 1, 1, 0, 0],
            9: [3, 2, 2, 2, 1, 1, 1, 0, 0],
            10: [3, 2, 2, 2, 1, 1, 1, 0, 0, 0]}
    for n, labels in want.items():
      self.assertEqual(list(flow.time_labels(n)), labels, n)
    with self.assertRaises(ValueError):
      flow.time_labels(0)

  def test_interpolant_endpoints_and_target(self):
    z, eps = jnp.full((2, 3), 2.0), jnp.full((2, 3), -1.0)
    np.testing.assert_array_equal(flow.interpolate(z, eps, jnp.zeros(2)), z)
    np.testing.assert_array_equal(flow.interpolate(z, eps, jnp.ones(2)), eps)
    # Midpoint: 0.5*2 + 0.5*(-1) = 0.5; target ε - z = -3.
    np.testing.assert_allclose(flow.interpolate(z, eps, jnp.full(2, 0.5)),
                               0.5)
    np.testing.assert_array_equal(flow.velocity_target(z, eps), -3.0)

  def test_euler_exact_for_the_true_constant_velocity(self):
    z = jnp.arange(6.0).reshape(2, 3)
    eps = jnp.ones((2, 3))
    v = lambda x, t: flow.velocity_target(z, eps)
    for n in (1, 4, 5, 7):
      np.testing.assert_allclose(flow.euler_sample(v, eps, n), z, atol=1e-6)

  def test_euler_feeds_labels(self):
    seen = []
    def v(x, t):
      seen.append(int(t[0]))
      return jnp.zeros_like(x)
    flow.euler_sample(v, jnp.zeros((1, 2)), 5)
    self.assertEqual(seen, [3, 2, 1, 1, 0])

  def test_device_labels_equal_the_host_formula(self):
    # time_label (int32, on device) against time_labels (the reference's
    # float64 formula) for every N ≤ 1000 and every step, at T = 4 (the
    # model's grid) and at T = 7, 11, where the float64 formula truncates
    # some exact integers down (see test_label_fixes).
    for num_labels, max_n in ((4, 1000), (7, 200), (11, 200)):
      n = np.arange(1, max_n + 1, dtype=np.int32)[:, None]
      i = np.arange(max_n, dtype=np.int32)[None, :]
      got = np.asarray(jax.jit(
          lambda i, n, t=num_labels: flow.time_label(i, n, t))(i, n))
      for row in range(max_n):
        want = flow.time_labels(row + 1, num_labels)
        np.testing.assert_array_equal(got[row, :row + 1], want,
                                      err_msg=f'T={num_labels} N={row + 1}')

  def test_label_fixes(self):
    # Python floats: (1.0 - 5/6) * 6 = 0.9999999999999998 → label 0, not 1;
    # (1.0 - 8/10) * 10 = 1.9999999999999996 → 1, not 2. T = 4 has none.
    self.assertEqual((1.0 - 5 / 6) * 6, 0.9999999999999998)
    self.assertEqual(flow._label_fixes(4), ())
    self.assertEqual(flow._label_fixes(7), ((1, 0),))
    self.assertEqual(flow._label_fixes(11), ((1, 0), (2, 1)))
    # Without the fix, the integer formula would give 1 at N = 6, i = 5.
    self.assertEqual(flow.time_labels(6, 7)[5], 0)
    self.assertEqual(int(flow.time_label(5, 6, 7)), 0)

  def test_step_size_rounds_like_the_host(self):
    # Both sides of the 4096-entry table (beyond it: division, exact on CPU).
    n = np.arange(1, 5001, dtype=np.int32)
    got = np.asarray(jax.jit(jax.vmap(flow.step_size))(n))
    want = np.float32([1.0 / k for k in range(1, 5001)])
    np.testing.assert_array_equal(got, want)

  def test_traced_steps_equal_unrolled_in_one_program(self):
    # The network runs on the host (pure_callback), so both programs compute
    # it identically and any difference is the sampler's own arithmetic.
    # (A jnp network is not enough: XLA constant-folds the unrolled loop's
    # labels and contracts different multiply-adds, a few ulps apart.)
    rng = np.random.default_rng(0)
    w = np.float32(0.3 * rng.standard_normal((6, 6)))
    emb = np.float32(rng.standard_normal((4, 6)))
    noise = jnp.asarray(np.float32(rng.standard_normal((3, 6))))

    def host(x, t):
      return (np.tanh(x @ w) + emb[t]).astype(np.float32)

    def v(x, t):
      return jax.pure_callback(
          host, jax.ShapeDtypeStruct(x.shape, x.dtype), x, t)

    traces = []

    def traced(x, n):
      traces.append(1)
      return flow.euler_sample(v, x, n)

    run = jax.jit(traced)
    unrolled = jax.jit(lambda x, n: flow.euler_sample(v, x, n),
                       static_argnums=1)
    for n in range(1, 13):
      got = run(noise, jnp.int32(n))
      np.testing.assert_array_equal(got, unrolled(noise, n), err_msg=n)
    self.assertLen(traces, 1)
    self.assertEqual(run._cache_size(), 1)

  def test_traced_steps_feed_the_host_labels(self):
    seen = []
    def v(x, t):
      jax.debug.callback(lambda tt: seen.append(int(tt[0])), t,
                         ordered=True)
      return jnp.zeros_like(x)
    run = jax.jit(lambda x, n: flow.euler_sample(v, x, n))
    for n in (1, 5, 9):
      seen.clear()
      run(jnp.zeros((1, 2)), jnp.int32(n))
      jax.effects_barrier()
      self.assertEqual(seen, list(flow.time_labels(n)), n)

  def test_sample_time(self):
    t, t_idx = flow.sample_time(jax.random.key(0), 1000)
    self.assertEqual(set(np.unique(np.asarray(t_idx)).tolist()),
                     {0.0, 1.0, 2.0, 3.0})
    np.testing.assert_allclose(t, t_idx / 3)
    t, t_idx = flow.sample_time(jax.random.key(0), 1000, continuous=True)
    self.assertGreater(len(np.unique(np.asarray(t))), 900)
    np.testing.assert_allclose(t_idx, 3 * t)


if __name__ == '__main__':
  absltest.main()
