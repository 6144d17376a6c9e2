"""Rectified-flow math: labels, interpolant, Euler sampler."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import flow


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
