"""Rectified-flow math on the 256-d priors, as pure functions (spec §2.6).

The student's flow maps Gaussian noise (t = 1) to the teacher's prior
(t = 0). Training draws a discrete label ``t_idx ∈ {0, …, T-1}`` (T = 4) and
uses ``t = t_idx / (T - 1)``; sampling takes N Euler steps of size 1/N while
the label fed to the network is ``floor((1 - i/N) (T - 1))``.

The step count of :func:`euler_sample` may be a traced int32 scalar: the
labels and the step size are then computed on device, equal to the host
values (:func:`time_labels`, ``float32(1.0 / N)``), so one compiled program
serves every N.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

NUM_TIME_LABELS = 4
# float32(1.0 / n) for n < _RECIPROCAL_TABLE_SIZE, as the host rounds the
# Python float: XLA:GPU divides float32 approximately (div.full.f32, up to
# 1 ulp off), so traced step sizes are looked up, not divided.
_RECIPROCAL_TABLE_SIZE = 4096
_RECIPROCAL_TABLE = np.float32(
    [0.0] + [1.0 / n for n in range(1, _RECIPROCAL_TABLE_SIZE)])


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


def _label_fixes(num_labels: int) -> tuple[tuple[int, int], ...]:
  """Where the float64 label formula truncates an exact integer down.

  The exact label ``(N - i)(T - 1) / N`` is an integer m (0 < m < T - 1)
  only when ``i / N = (T - 1 - m) / (T - 1)``; Python's ``i / N`` then
  rounds that rational alone, so whether the float64 formula yields m or
  m - 1 depends on (T, m), not on N. Returns the ``(m, host label)``
  pairs where it is not m (none for T = 4; T = 7: ((1, 0),)).
  """
  s = num_labels - 1
  fixes = []
  for m in range(1, s):
    got = int((1.0 - (s - m) / s) * s)
    if got != m:
      fixes.append((m, got))
  return tuple(fixes)


def time_label(step: jax.Array, num_steps: jax.Array,
               num_labels: int = NUM_TIME_LABELS) -> jax.Array:
  """:func:`time_labels` on device for traced ``step`` i and ``num_steps``.

  ``⌊(N - i)(T - 1) / N⌋`` in int32 arithmetic, corrected at the exact
  integers the host's float64 formula truncates down
  (:func:`_label_fixes`); elsewhere the exact value is at least 1/N away
  from an integer, far beyond the float64 error, so both agree (checked for
  every N ≤ 1000 in ``tests/flow_test.py``). Exact while
  ``N (T - 1) < 2³¹``.

  Args:
    step: i, int32 (any shape), 0 ≤ i < N.
    num_steps: N ≥ 1, int32 broadcastable against ``step``.
    num_labels: T, a Python int.

  Returns:
    int32 labels, the broadcast shape of ``step`` and ``num_steps``.
  """
  step = jnp.asarray(step, jnp.int32)
  num_steps = jnp.asarray(num_steps, jnp.int32)
  scaled = (num_steps - step) * (num_labels - 1)
  label = scaled // num_steps
  for m, host in _label_fixes(num_labels):
    label = jnp.where(scaled == m * num_steps, host, label)
  return label


def step_size(num_steps: jax.Array) -> jax.Array:
  """``1/N`` as float32, rounded as the host's ``float32(1.0 / N)``.

  Looked up for N < 4096 (exact on every backend); larger N divide on
  device (exact on CPU, within 1 ulp on GPU).

  Args:
    num_steps: N ≥ 1, an int32 scalar (traced or not).

  Returns:
    float32 scalar.
  """
  n = jnp.asarray(num_steps, jnp.int32)
  table = jnp.asarray(_RECIPROCAL_TABLE)
  looked_up = table[jnp.clip(n, 0, _RECIPROCAL_TABLE_SIZE - 1)]
  return jnp.where(n < _RECIPROCAL_TABLE_SIZE, looked_up,
                   1.0 / n.astype(jnp.float32))


def _is_static_int(n) -> bool:
  return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


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


def euler_sample(velocity_fn: VelocityFn, noise: jax.Array,
                 num_steps: int | jax.Array,
                 num_labels: int = NUM_TIME_LABELS) -> jax.Array:
  """Explicit Euler from noise (t = 1) to data (t = 0).

  ``x ← x - (1/N) v(x, t_idx)`` with the labels of :func:`time_labels`.

  A Python int N is unrolled (the network sees concrete labels, and the
  loop is reverse-differentiable, as training's KD gradient needs). A traced
  int32 scalar N runs a ``lax.fori_loop`` of N steps with the labels
  (:func:`time_label`) and step size (:func:`step_size`) computed on
  device: the same values, hence the same x, with one compiled program for
  every N (forward only: a traced trip count is not reverse-differentiable).

  Args:
    velocity_fn: ``(x (B, D), t_idx (B,) int32) -> v (B, D)``.
    noise: (B, D) starting point ε, passed in so runs are reproducible.
    num_steps: N ≥ 1, a Python int or an int32 scalar array (not checked
      when traced).
    num_labels: T.

  Returns:
    (B, D) sample.
  """
  b = noise.shape[0]
  if _is_static_int(num_steps):
    x = noise
    for label in time_labels(int(num_steps), num_labels):
      t_idx = jnp.full((b,), label, jnp.int32)
      x = x - (1.0 / num_steps) * velocity_fn(x, t_idx)
    return x

  n = jnp.asarray(num_steps, jnp.int32).reshape(())
  dt = step_size(n)

  def body(i, x):
    t_idx = jnp.full((b,), time_label(i, n, num_labels), jnp.int32)
    v = velocity_fn(x, t_idx)
    return (x - dt.astype(v.dtype) * v).astype(x.dtype)

  return jax.lax.fori_loop(0, n, body, noise)
