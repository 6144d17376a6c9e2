"""IR-Flow's rectified-flow math, model-agnostic (spec irflow.md §2, §3, §5).

Pixel-space, noise-free flow from the degraded image (t = 1) to the clean one
(t = 0) on the integer grid ``k ∈ {0, …, 1000}``, ``t = k / 1000``:

* forward process ``x_t = t·x_lq + (1 − t)·x_gt``;
* cumulative target ``x_t − x_gt`` (the reference's ``isXT: True``) or the
  constant velocity ``x_lq − x_gt``;
* Euler-1 sampler ``x ← x − w·f(x, k)`` with the hand-tuned (w, k) tables for
  N = 2, 3, 4 and the uniform rule ``w = 1/i``, ``k = ⌊i·1000/N⌋`` otherwise;
  Heun-2 and the dead-code ``standard_euler`` for completeness;
* the multi-step-consistency (MSC) rollout (its loss and the training loss
  live in ``losses.py``).

Every function takes the network as a callable ``velocity_fn(x, k)``: ``x`` is
(B, H, W, C) and ``k`` an int32 array of shape (B,) (training) or (1,)
(sampling and MSC, broadcast over the batch, as the reference feeds it).

Time truncation: the reference builds every sampler time with
``torch.tensor(i * h).long()`` where ``h = 1000 / N`` is a Python float, so the
float64 product is first rounded to float32 and then truncated (the parity
fixture ``irflow_euler`` records it as ``long(float32(i*h))``). This equals
``int(i * h)`` for every N ≤ 18 and every N in the test sweeps, but not
always beyond (N = 19: ``19·h = 999.9999999999999`` → 1000, not 999);
:func:`_uniform_time` reproduces the float32 rounding.

Traced step counts: every sampler also takes N as an int32 scalar array
(traced under ``jit``), so one compiled program serves every N. The
schedule is then computed on device (:func:`uniform_time`,
:func:`reciprocal`, the hand-tuned rows selected by N) with the host's exact
values, and the steps run in a ``lax.fori_loop`` (forward only) or, for the
MSC rollout that is differentiated, a ``lax.scan`` of fixed length whose
steps past N are skipped (:func:`_run_steps`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

T = 1000
# MSC draws K ~ U{2..10} (np.random.randint(2, 11) in the reference).
MSC_MIN_STEPS = 2
MSC_MAX_STEPS = 10
MSC_MODES = ('reference', 'paper', 'off')

# Hand-tuned Euler-1 schedules (w, k) of the reference for N = 2, 3, 4.
_NONLINEAR_SCHEDULES = {
    2: ((0.8, 1000), (1.0, 200)),
    3: ((0.8, 1000), (0.5, 200), (1.0, 100)),
    4: ((0.5, 1000), (0.5, 500), (0.8, 250), (1.0, 50)),
}
# Heun-2, N = 2: the corrector averages two queries 50 either side of t = 0.5.
_HEUN2_DELTA = 50
# float32(1.0 / n) for n < _RECIPROCAL_TABLE_SIZE, as the host rounds the
# Python float: XLA:GPU divides float32 approximately (div.full.f32, up to
# 1 ulp off), so traced weights are looked up, not divided.
_RECIPROCAL_TABLE_SIZE = 4096
_RECIPROCAL_TABLE = np.float32(
    [0.0] + [1.0 / n for n in range(1, _RECIPROCAL_TABLE_SIZE)])


VelocityFn = Callable[[jax.Array, jax.Array | None], jax.Array]


# ----------------------------------------------------------------------------
# Forward process.
# ----------------------------------------------------------------------------


def sample_k(rng: jax.Array, batch: int) -> jax.Array:
  """Draws one integer time per sample, ``k ~ U{0, …, 1000}`` inclusive.

  Args:
    rng: PRNG key.
    batch: B.

  Returns:
    (B,) int32.
  """
  return jax.random.randint(rng, (batch,), 0, T + 1, dtype=jnp.int32)


# t = k / 1000 for every k, correctly rounded in float32 as torch's
# ``k.float() / 1000``. XLA rewrites a division by a constant into a
# multiplication by its reciprocal (t(700) = 0.70000005 instead of 0.7), so
# the interpolant looks the times up instead of dividing.
_T_TABLE = np.arange(T + 1, dtype=np.float32) / np.float32(T)


def _time(k: jax.Array, ndim: int) -> jax.Array:
  """``t = k / 1000`` in float32, shaped (B, 1, …, 1) for broadcasting."""
  k = jnp.asarray(k).astype(jnp.int32).reshape(-1)
  t = jnp.asarray(_T_TABLE)[k]
  return t.reshape((-1,) + (1,) * (ndim - 1))


def interpolate(x_lq: jax.Array, x_gt: jax.Array, k: jax.Array) -> jax.Array:
  """The interpolant ``x_t = t·x_lq + (1 − t)·x_gt`` with ``t = k / 1000``.

  Args:
    x_lq: (B, H, W, C) degraded image (t = 1).
    x_gt: (B, H, W, C) clean image (t = 0).
    k: integer times in [0, 1000] of shape (B,), (B, 1, 1, 1) (as the
      reference's ``generate_random_timesteps`` shapes them) or (1,);
      ``t = k / 1000`` is rounded to float32 exactly as the reference's
      float32 division.

  Returns:
    (B, H, W, C) ``x_t``.
  """
  t = _time(k, x_lq.ndim)
  return t * x_lq + (1.0 - t) * x_gt


def velocity_target(x_lq: jax.Array, x_gt: jax.Array, x_t: jax.Array, *,
                    cumulative: bool = True) -> jax.Array:
  """The regression target of the matching loss.

  Args:
    x_lq: (B, H, W, C) degraded image.
    x_gt: (B, H, W, C) clean image.
    x_t: (B, H, W, C) interpolant.
    cumulative: True (reference ``isXT: True``, every config) gives the
      cumulative displacement ``x_t − x_gt = t·(x_lq − x_gt)``; False gives
      the constant rectified-flow velocity ``x_lq − x_gt`` (only consistent
      with 1-step sampling, spec §2).

  Returns:
    (B, H, W, C) target.
  """
  if cumulative:
    return x_t - x_gt
  return x_lq - x_gt


# ----------------------------------------------------------------------------
# Schedules and samplers.
# ----------------------------------------------------------------------------


def _uniform_time(i: int, num_steps: int) -> int:
  """``torch.tensor(i * (1000 / N)).long()``: float64 → float32 → truncate."""
  return int(np.float32(i * (T / num_steps)))


def _check_steps(num_steps: int) -> None:
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}.')


def uniform_schedule(num_steps: int) -> tuple[tuple[float, int], ...]:
  """The uniform Euler-1 rule ``(1/i, ⌊i·1000/N⌋)`` for i = N, …, 1.

  Args:
    num_steps: N ≥ 1.

  Returns:
    N (w, k) pairs in sampling order.
  """
  _check_steps(num_steps)
  return tuple((1.0 / i, _uniform_time(i, num_steps))
               for i in range(num_steps, 0, -1))


def euler_schedule(num_steps: int) -> tuple[tuple[float, int], ...]:
  """The (w, k) pairs the reference Euler-1 sampler uses, in order.

  N = 1: ((1.0, 1000),); N = 2, 3, 4: the hand-tuned tables of spec §5
  (e.g. N = 2: (0.8, 1000), (1.0, 200)); otherwise :func:`uniform_schedule`
  (N = 6: k = 1000, 833, 666, 500, 333, 166 with w = 1/6, 1/5, …, 1).

  Args:
    num_steps: N ≥ 1.

  Returns:
    N (w, k) pairs.

  Raises:
    ValueError: N < 1.
  """
  _check_steps(num_steps)
  if num_steps in _NONLINEAR_SCHEDULES:
    return _NONLINEAR_SCHEDULES[num_steps]
  return uniform_schedule(num_steps)


def _is_static_int(n) -> bool:
  return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


def _k1(k: int | jax.Array) -> jax.Array:
  """A sampler time as the reference feeds it: int (1,), batch-broadcast."""
  return jnp.full((1,), k, jnp.int32)


def uniform_time(i: jax.Array, num_steps: jax.Array) -> jax.Array:
  """:func:`_uniform_time` on device: ``⌊i·1000/N⌋`` in int32.

  The reference's float32 rounding of ``i·(1000/N)`` lands on the exact
  floor while the exact quotient is at least 1/N away from the next
  integer, i.e. more than float32's half-ulp below 1000 (2⁻¹⁵): every
  N ≤ 32772 (``tests/irflow_flow_test.py`` checks N ≤ 1000 for every i;
  N = 32773, i = 27431 is the first miss, 836 instead of 837).

  Args:
    i: int32 (any shape), 0 ≤ i ≤ N.
    num_steps: N ≥ 1, int32 broadcastable against ``i``.

  Returns:
    int32 times.
  """
  i = jnp.asarray(i, jnp.int32)
  return (i * T) // jnp.asarray(num_steps, jnp.int32)


def reciprocal(i: jax.Array) -> jax.Array:
  """``float32(1.0 / i)`` on device, rounded as the host rounds it.

  Looked up for i < 4096 (exact on every backend); larger i divide on
  device (exact on CPU, within 1 ulp on GPU).

  Args:
    i: int32 (any shape), ≥ 1.

  Returns:
    float32, the shape of ``i``.
  """
  i = jnp.asarray(i, jnp.int32)
  looked_up = jnp.asarray(_RECIPROCAL_TABLE)[
      jnp.clip(i, 0, _RECIPROCAL_TABLE_SIZE - 1)]
  return jnp.where(i < _RECIPROCAL_TABLE_SIZE, looked_up,
                   1.0 / i.astype(jnp.float32))


def uniform_step(j: jax.Array, num_steps: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
  """Step j of :func:`uniform_schedule` on device: ``(1/i, ⌊i·1000/N⌋)``.

  Args:
    j: int32, 0 ≤ j < N (i = N − j).
    num_steps: N ≥ 1, int32.

  Returns:
    ``(w float32, k int32)``, the host's values exactly.
  """
  i = jnp.asarray(num_steps, jnp.int32) - jnp.asarray(j, jnp.int32)
  return reciprocal(i), uniform_time(i, num_steps)


def _hand_tables() -> tuple[np.ndarray, np.ndarray]:
  """The hand-tuned Euler-1 rows as (w, k) tables: row N, column j.

  Rows N ∉ {2, 3, 4} and columns j ≥ N are padding (w = 0, k = 0).
  """
  rows = max(_NONLINEAR_SCHEDULES) + 1
  ws = np.zeros((rows, rows - 1), np.float32)
  ks = np.zeros((rows, rows - 1), np.int32)
  for n, sched in _NONLINEAR_SCHEDULES.items():
    for j, (w, k) in enumerate(sched):
      ws[n, j], ks[n, j] = w, k
  return ws, ks


_HAND_W_TABLE, _HAND_K_TABLE = _hand_tables()


def euler_step(j: jax.Array, num_steps: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
  """Step j of :func:`euler_schedule` on device (traced j and N).

  The uniform rule, with the hand-tuned rows for N = 2, 3, 4 selected by N.

  Args:
    j: int32, 0 ≤ j < N.
    num_steps: N ≥ 1, int32.

  Returns:
    ``(w float32, k int32)``, the host's values exactly.
  """
  j = jnp.asarray(j, jnp.int32)
  n = jnp.asarray(num_steps, jnp.int32)
  w, k = uniform_step(j, n)
  rows, cols = _HAND_K_TABLE.shape
  row, col = jnp.clip(n, 0, rows - 1), jnp.clip(j, 0, cols - 1)
  hand = jnp.isin(n, jnp.asarray(tuple(_NONLINEAR_SCHEDULES)))
  w = jnp.where(hand, jnp.asarray(_HAND_W_TABLE)[row, col], w)
  k = jnp.where(hand, jnp.asarray(_HAND_K_TABLE)[row, col], k)
  return w, k


def _run_steps(step: Callable[[jax.Array, jax.Array], jax.Array],
               x: jax.Array, num_steps: jax.Array,
               max_steps: int | None = None) -> jax.Array:
  """``x ← step(x, j)`` for j = 0 … N − 1 with a traced N.

  Args:
    step: ``(x, j int32 scalar) -> x``.
    x: the initial state (its dtype is kept).
    num_steps: N, an int32 scalar.
    max_steps: None runs a ``lax.fori_loop`` of N iterations (forward
      only); an int runs a ``lax.scan`` of ``max_steps`` iterations whose
      body is a ``lax.cond`` skipping j ≥ N, so it is reverse-differentiable
      (N ≤ ``max_steps``) and still evaluates the network only N times.

  Returns:
    The final state.
  """
  n = jnp.asarray(num_steps, jnp.int32).reshape(())
  dtype = x.dtype

  def typed_step(j, y):
    return step(y, j).astype(dtype)

  if max_steps is None:
    return jax.lax.fori_loop(0, n, typed_step, x)

  def body(y, j):
    return jax.lax.cond(j < n, typed_step, lambda _, z: z, j, y), None

  x, _ = jax.lax.scan(body, x, jnp.arange(max_steps, dtype=jnp.int32))
  return x


def euler_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                 num_steps: int | jax.Array) -> jax.Array:
  """Euler-1 from ``x_lq`` (t = 1) to the clean estimate (t = 0).

  ``x ← x − w·f(x, k)`` over :func:`euler_schedule`. A Python int N is
  Python-unrolled over the static schedule; an int32 scalar array N
  (traced under ``jit``: one program for every N) runs a ``lax.fori_loop``
  over :func:`euler_step`, the same (w, k) and hence the same x.

  Args:
    velocity_fn: ``(x (B, H, W, C), k (1,) int32) -> (B, H, W, C)``.
    x_lq: (B, H, W, C) degraded image.
    num_steps: N ≥ 1, a Python int or an int32 scalar array (not checked
      when traced).

  Returns:
    (B, H, W, C) restored image.
  """
  if _is_static_int(num_steps):
    x = x_lq
    for w, k in euler_schedule(int(num_steps)):
      x = x - w * velocity_fn(x, _k1(k))
    return x

  def step(x, j):
    w, k = euler_step(j, num_steps)
    v = velocity_fn(x, _k1(k))
    return x - w.astype(v.dtype) * v

  return _run_steps(step, x_lq, num_steps)


def heun_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                num_steps: int | jax.Array) -> jax.Array:
  """Heun-2 exactly as the reference codes it (no config uses it).

  * N = 1: one Euler step ``x − f(x, 1000)`` (the reference's
    ``reverse_ode`` handles N = 1 before dispatching on the solver).
  * N = 2: ``x_mid = x − ½ f(x, 1000)``, then
    ``x_mid − ½ (f(x_mid, 550) + f(x_mid, 450))`` (3 evaluations).
  * N ≥ 3: for i = N…1, ``d = f(x, ⌊i·h⌋)``, ``x̂ = x − d/i``,
    ``d̂ = f(x̂, ⌊(i−1)·h⌋)``, ``x ← x − (1/(2i))(d + d̂)`` with h = 1000/N
    (2N evaluations, the last corrector at k = 0).

  Known defect (spec §5, §12.4): averaging cumulative displacements taken
  at different levels is not a consistent second-order rule for this
  parameterisation; with the exact oracle ``f = x − x_gt`` it covers only
  77.4 % (N = 3), 85.5 % (N = 5) and 92.4 % (N = 10) of the LQ→GT distance
  (N = 2: 100 %). Ported for parity only.

  A traced N picks the case with ``lax.switch`` (the N ≥ 3 loop a
  ``lax.fori_loop``), with the host's times and weights.

  Args:
    velocity_fn: ``(x, k (1,) int32) -> velocity``.
    x_lq: (B, H, W, C) degraded image.
    num_steps: N ≥ 1, a Python int or an int32 scalar array (not checked
      when traced).

  Returns:
    (B, H, W, C) output.
  """
  def one(x):
    return x - velocity_fn(x, _k1(T))

  def two(x):
    d = velocity_fn(x, _k1(T))
    x_mid = x - 0.5 * d
    d1 = velocity_fn(x_mid, _k1(T // 2 + _HEUN2_DELTA))
    d2 = velocity_fn(x_mid, _k1(T // 2 - _HEUN2_DELTA))
    return x_mid - 0.5 * (d1 + d2)

  if _is_static_int(num_steps):
    _check_steps(num_steps)
    if num_steps <= 2:
      return (one, two)[num_steps - 1](x_lq)
    x = x_lq
    for i in range(num_steps, 0, -1):
      w = 1.0 / i
      d = velocity_fn(x, _k1(_uniform_time(i, num_steps)))
      x_hat = x - w * d
      d_hat = velocity_fn(x_hat, _k1(_uniform_time(i - 1, num_steps)))
      x = x - (w / 2) * (d + d_hat)
    return x

  n = jnp.asarray(num_steps, jnp.int32).reshape(())

  def step(x, j):
    i = n - j
    w = reciprocal(i)
    d = velocity_fn(x, _k1(uniform_time(i, n)))
    w = w.astype(d.dtype)
    x_hat = x - w * d
    d_hat = velocity_fn(x_hat, _k1(uniform_time(i - 1, n)))
    return x - (w / 2) * (d + d_hat)

  def many(x):
    return _run_steps(step, x, n)

  def kept(fn):
    return lambda x: fn(x).astype(x.dtype)

  return jax.lax.switch(jnp.clip(n, 1, 3) - 1,
                        [kept(one), kept(two), kept(many)], x_lq)


def standard_euler_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                          num_steps: int | jax.Array) -> jax.Array:
  """The reference's dead-code constant-velocity Euler (``standard_euler``).

  ``x ← x − (1/N)·f(x, ⌊i·1000/N⌋)`` for i = N…1 (N = 4: k = 1000, 750, 500,
  250). Only consistent with the constant-velocity target. A traced N runs
  a ``lax.fori_loop`` with the host's times and step size.

  Args and returns as :func:`heun_sample`.
  """
  if _is_static_int(num_steps):
    _check_steps(num_steps)
    dt = 1.0 / num_steps
    x = x_lq
    for i in range(num_steps, 0, -1):
      x = x - velocity_fn(x, _k1(_uniform_time(i, num_steps))) * dt
    return x

  n = jnp.asarray(num_steps, jnp.int32).reshape(())
  dt = reciprocal(n)

  def step(x, j):
    v = velocity_fn(x, _k1(uniform_time(n - j, n)))
    return x - v * dt.astype(v.dtype)

  return _run_steps(step, x_lq, n)


# ----------------------------------------------------------------------------
# Multi-step consistency.
# ----------------------------------------------------------------------------


def _msc_tables() -> tuple[np.ndarray, np.ndarray]:
  """Host-side (k, w) of the uniform rollout, K = 0…MSC_MAX_STEPS.

  Row K, column j is step j (i = K − j) of the K-step uniform rollout:
  ``k = ⌊i·1000/K⌋`` (reference float arithmetic), ``w = 1/i``; columns
  j ≥ K (and row 0) are padding with k = 0, w = 0. The traced rollout
  computes the same values on device (:func:`uniform_step`); these tables
  are the host's statement of them.
  """
  ks = np.zeros((MSC_MAX_STEPS + 1, MSC_MAX_STEPS), np.int32)
  ws = np.zeros((MSC_MAX_STEPS + 1, MSC_MAX_STEPS), np.float32)
  for n in range(1, MSC_MAX_STEPS + 1):
    for j, (w, k) in enumerate(uniform_schedule(n)):
      ks[n, j], ws[n, j] = k, w
  return ks, ws


MSC_K_TABLE, MSC_W_TABLE = _msc_tables()


def msc_rollout(velocity_fn: VelocityFn, x_lq: jax.Array,
                num_steps: int | jax.Array, *, remat: bool = False
                ) -> jax.Array:
  """The uniform-Euler rollout of the MSC loss.

  ``x ← x − (1/i)·f(x, ⌊i·1000/K⌋)`` for i = K…1 from ``x_lq``: the uniform
  rule for every K, including K = 2, 3, 4 (unlike :func:`euler_sample`).

  A Python int K (≥ 1) is unrolled. A traced int32 scalar K ∈ {1…10} runs
  the samplers' step machinery (:func:`_run_steps`, :func:`uniform_step`)
  as a ``lax.scan`` over :data:`MSC_MAX_STEPS` steps whose body is a
  ``lax.cond`` skipping steps j ≥ K, so one compiled program serves every
  K, only K network evaluations run, and the loss can backprop through it.

  Args:
    velocity_fn: ``(x, k (1,) int32) -> velocity``.
    x_lq: (B, H, W, C) start point.
    num_steps: K, a Python int or an int32 scalar array.
    remat: wrap each step in ``jax.checkpoint`` so backprop through the
      rollout keeps one state per step instead of every activation.

  Returns:
    (B, H, W, C) end point of the rollout.
  """
  def step(x, k, w):
    return x - w * velocity_fn(x, k)

  if remat:
    step = jax.checkpoint(step)

  if _is_static_int(num_steps):
    x = x_lq
    for w, k in uniform_schedule(int(num_steps)):
      x = step(x, _k1(k), jnp.float32(w))
    return x

  def traced_step(x, j):
    w, k = uniform_step(j, num_steps)
    return step(x, _k1(k), w)

  return _run_steps(traced_step, x_lq, num_steps, max_steps=MSC_MAX_STEPS)
