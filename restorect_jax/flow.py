"""Rectified-flow math on the 256-d priors, as pure functions (spec §2.6).

The student's flow maps Gaussian noise (t = 1) to the teacher's prior
(t = 0). Training draws a discrete label ``t_idx ∈ {0, …, T-1}`` (T = 4) and
uses ``t = t_idx / (T - 1)``; sampling takes N Euler steps of size 1/N while
the label fed to the network is ``floor((1 - i/N) (T - 1))``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

NUM_TIME_LABELS = 4


def time_labels(num_steps: int, num_labels: int = NUM_TIME_LABELS
                ) -> tuple[int, ...]:
  """Time labels the reference sampler feeds at each Euler step.

  Computed in Python floats (float64) exactly as the reference does:
  ``int((1 - i / N) * (T - 1))``; e.g. N = 5 gives (3, 2, 1, 1, 0).

  Args:
    num_steps: N ≥ 1.
    num_labels: T, the number of labels in the training grid.

  Returns:
    N integer labels.
  """
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}.')
  return tuple(int((1.0 - i / num_steps) * (num_labels - 1))
               for i in range(num_steps))


def sample_time(rng: jax.Array, batch: int, *, continuous: bool = False,
                num_labels: int = NUM_TIME_LABELS
                ) -> tuple[jax.Array, jax.Array]:
  """Draws training times.

  Args:
    rng: PRNG key.
    batch: B.
    continuous: reference behaviour (False) draws ``t_idx ~ U{0..T-1}`` and
      ``t = t_idx / (T - 1)``; the paper reading (True) draws
      ``t ~ U[0, 1]`` and feeds ``t_idx = t (T - 1)`` as a real number.
    num_labels: T.

  Returns:
    ``(t, t_idx)``, both (B,) float32: t in [0, 1] and the network's label.
  """
  if continuous:
    t = jax.random.uniform(rng, (batch,))
    return t, t * (num_labels - 1)
  t_idx = jax.random.randint(rng, (batch,), 0, num_labels)
  t_idx = t_idx.astype(jnp.float32)
  return t_idx / (num_labels - 1), t_idx


def interpolate(z: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
  """``x_t = (1 - t) z + t ε`` with t broadcast over the feature axis."""
  t = t.reshape((-1,) + (1,) * (z.ndim - 1))
  return (1.0 - t) * z + t * noise


def velocity_target(z: jax.Array, noise: jax.Array) -> jax.Array:
  """The constant velocity ``ε - z`` that carries data to noise."""
  return noise - z


def velocity_mse(v_pred: jax.Array, v_target: jax.Array) -> jax.Array:
  """Mean squared error over batch and features."""
  return jnp.mean(jnp.square(v_pred - v_target))


VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]


def euler_sample(velocity_fn: VelocityFn, noise: jax.Array, num_steps: int,
                 num_labels: int = NUM_TIME_LABELS) -> jax.Array:
  """Explicit Euler from noise (t = 1) to data (t = 0).

  ``x ← x - (1/N) v(x, t_idx)`` with the labels of :func:`time_labels`. The
  step count is static (unrolled), as it is small (≤ 10 in practice).

  Args:
    velocity_fn: ``(x (B, D), t_idx (B,)) -> v (B, D)``.
    noise: (B, D) starting point ε, passed in so runs are reproducible.
    num_steps: N.
    num_labels: T.

  Returns:
    (B, D) sample.
  """
  x = noise
  b = noise.shape[0]
  for label in time_labels(num_steps, num_labels):
    t_idx = jnp.full((b,), label, jnp.int32)
    x = x - (1.0 / num_steps) * velocity_fn(x, t_idx)
  return x
