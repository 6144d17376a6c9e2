"""IR-Flow's rectified-flow math, model-agnostic (spec irflow.md §2, §3, §5).

Pixel-space, noise-free flow from the degraded image (t = 1) to the clean one
(t = 0) on the integer grid ``k ∈ {0, …, 1000}``, ``t = k / 1000``:

* forward process ``x_t = t·x_lq + (1 − t)·x_gt``;
* cumulative target ``x_t − x_gt`` (the reference's ``isXT: True``) or the
  constant velocity ``x_lq − x_gt``;
* Euler-1 sampler ``x ← x − w·f(x, k)`` with the hand-tuned (w, k) tables for
  N = 2, 3, 4 and the uniform rule ``w = 1/i``, ``k = ⌊i·1000/N⌋`` otherwise;
  Heun-2 and the dead-code ``standard_euler`` for completeness;
* matching losses (l1, l2, SmoothL1, 1 − SSIM), the multi-step-consistency
  (MSC) loss and the full training loss.

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
LOSS_KINDS = ('l1', 'l2', 'sl1', 'ssim')

# Hand-tuned Euler-1 schedules (w, k) of the reference for N = 2, 3, 4.
_NONLINEAR_SCHEDULES = {
    2: ((0.8, 1000), (1.0, 200)),
    3: ((0.8, 1000), (0.5, 200), (1.0, 100)),
    4: ((0.5, 1000), (0.5, 500), (0.8, 250), (1.0, 50)),
}
# Heun-2, N = 2: the corrector averages two queries 50 either side of t = 0.5.
_HEUN2_DELTA = 50

# SSIM constants (data in [0, 1]).
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2

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


def _k1(k: int) -> jax.Array:
  """A sampler time as the reference feeds it: int (1,), batch-broadcast."""
  return jnp.full((1,), k, jnp.int32)


def euler_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                 num_steps: int) -> jax.Array:
  """Euler-1 from ``x_lq`` (t = 1) to the clean estimate (t = 0).

  ``x ← x − w·f(x, k)`` over :func:`euler_schedule`; Python-unrolled over the
  static schedule, so it can be jitted with ``num_steps`` static.

  Args:
    velocity_fn: ``(x (B, H, W, C), k (1,) int32) -> (B, H, W, C)``.
    x_lq: (B, H, W, C) degraded image.
    num_steps: N ≥ 1.

  Returns:
    (B, H, W, C) restored image.
  """
  x = x_lq
  for w, k in euler_schedule(num_steps):
    x = x - w * velocity_fn(x, _k1(k))
  return x


def heun_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                num_steps: int) -> jax.Array:
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

  Args:
    velocity_fn: ``(x, k (1,) int32) -> velocity``.
    x_lq: (B, H, W, C) degraded image.
    num_steps: N ≥ 1.

  Returns:
    (B, H, W, C) output.
  """
  _check_steps(num_steps)
  x = x_lq
  if num_steps == 1:
    return x - velocity_fn(x, _k1(T))
  if num_steps == 2:
    d = velocity_fn(x, _k1(T))
    x_mid = x - 0.5 * d
    d1 = velocity_fn(x_mid, _k1(T // 2 + _HEUN2_DELTA))
    d2 = velocity_fn(x_mid, _k1(T // 2 - _HEUN2_DELTA))
    return x_mid - 0.5 * (d1 + d2)
  for i in range(num_steps, 0, -1):
    w = 1.0 / i
    d = velocity_fn(x, _k1(_uniform_time(i, num_steps)))
    x_hat = x - w * d
    d_hat = velocity_fn(x_hat, _k1(_uniform_time(i - 1, num_steps)))
    x = x - (w / 2) * (d + d_hat)
  return x


def standard_euler_sample(velocity_fn: VelocityFn, x_lq: jax.Array,
                          num_steps: int) -> jax.Array:
  """The reference's dead-code constant-velocity Euler (``standard_euler``).

  ``x ← x − (1/N)·f(x, ⌊i·1000/N⌋)`` for i = N…1 (N = 4: k = 1000, 750, 500,
  250). Only consistent with the constant-velocity target.

  Args:
    velocity_fn: ``(x, k (1,) int32) -> velocity``.
    x_lq: (B, H, W, C) degraded image.
    num_steps: N ≥ 1.

  Returns:
    (B, H, W, C) output.
  """
  _check_steps(num_steps)
  dt = 1.0 / num_steps
  x = x_lq
  for i in range(num_steps, 0, -1):
    x = x - velocity_fn(x, _k1(_uniform_time(i, num_steps))) * dt
  return x


# ----------------------------------------------------------------------------
# Matching losses.
# ----------------------------------------------------------------------------


def _gaussian_taps() -> np.ndarray:
  """11-tap Gaussian (σ 1.5), normalised in float32."""
  x = np.arange(_SSIM_WINDOW, dtype=np.float64) - _SSIM_WINDOW // 2
  g = np.exp(-x**2 / (2 * _SSIM_SIGMA**2)).astype(np.float32)
  return g / g.sum()


def _blur(x: jax.Array) -> jax.Array:
  """Per-channel 11×11 Gaussian filter, zero padding 5, same size (NHWC).

  The window is separable, so it runs as two 11-tap passes of shifted
  slices (XLA:CPU runs grouped ``lax.conv`` ~11× slower, stack.md §2i).
  """
  g = [float(t) for t in _gaussian_taps()]
  pad = _SSIM_WINDOW // 2
  h, w = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
  x = sum(t * xp[:, i:i + h] for i, t in enumerate(g))
  xp = jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (0, 0)))
  return sum(t * xp[:, :, i:i + w] for i, t in enumerate(g))


def ssim_map(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-pixel SSIM map of two NHWC images in [0, 1].

  Gaussian 11×11 window (σ 1.5) applied per channel with zero padding
  (output the input size), C1 = 0.01², C2 = 0.03², as the reference's
  ``SSIMLoss``.

  Args:
    a: (B, H, W, C).
    b: (B, H, W, C).

  Returns:
    (B, H, W, C) SSIM map.
  """
  mu1, mu2 = _blur(a), _blur(b)
  mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
  s1 = _blur(a * a) - mu1_sq
  s2 = _blur(b * b) - mu2_sq
  s12 = _blur(a * b) - mu12
  num = (2 * mu12 + _SSIM_C1) * (2 * s12 + _SSIM_C2)
  den = (mu1_sq + mu2_sq + _SSIM_C1) * (s1 + s2 + _SSIM_C2)
  return num / den


def matching_loss(pred: jax.Array, target: jax.Array,
                  kind: str = 'l2') -> jax.Array:
  """The reference ``MatchingLoss`` (unweighted).

  Element-wise loss, mean over the non-batch dims per sample, then mean over
  the batch. Kinds: ``'l1'``, ``'l2'`` (MSE, every config), ``'sl1'``
  (SmoothL1, β = 1) and ``'ssim'`` (per sample ``1 − mean SSIM map``, see
  :func:`ssim_map`; the reference's ``ssim`` path reduces to a 0-d tensor
  before the per-sample reduction and so cannot run, this is its intent).

  Args:
    pred: (B, …) prediction; (B, H, W, C) in [0, 1] for ``'ssim'``.
    target: same shape as ``pred``.
    kind: one of :data:`LOSS_KINDS`.

  Returns:
    Scalar loss.

  Raises:
    ValueError: unknown ``kind``.
  """
  diff = pred - target
  if kind == 'l1':
    per_elem = jnp.abs(diff)
  elif kind == 'l2':
    per_elem = jnp.square(diff)
  elif kind == 'sl1':
    a = jnp.abs(diff)
    per_elem = jnp.where(a < 1.0, 0.5 * jnp.square(diff), a - 0.5)
  elif kind == 'ssim':
    per_elem = 1.0 - ssim_map(pred, target)
  else:
    raise ValueError(f'Unknown matching loss kind {kind!r}; '
                     f'expected one of {LOSS_KINDS}.')
  per_sample = jnp.mean(per_elem.reshape(per_elem.shape[0], -1), axis=1)
  return jnp.mean(per_sample)


# ----------------------------------------------------------------------------
# Multi-step consistency.
# ----------------------------------------------------------------------------


def _msc_tables() -> tuple[np.ndarray, np.ndarray]:
  """Host-side (k, w) lookup for the uniform rollout, K = 0…MSC_MAX_STEPS.

  Row K, column j is step j (i = K − j) of the K-step uniform rollout:
  ``k = ⌊i·1000/K⌋`` (reference float arithmetic), ``w = 1/i``; columns
  j ≥ K (and row 0) are padding with k = 0, w = 0.
  """
  ks = np.zeros((MSC_MAX_STEPS + 1, MSC_MAX_STEPS), np.int32)
  ws = np.zeros((MSC_MAX_STEPS + 1, MSC_MAX_STEPS), np.float32)
  for n in range(1, MSC_MAX_STEPS + 1):
    for j, (w, k) in enumerate(uniform_schedule(n)):
      ks[n, j], ws[n, j] = k, w
  return ks, ws


MSC_K_TABLE, MSC_W_TABLE = _msc_tables()


def _is_static_int(n) -> bool:
  return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


def msc_rollout(velocity_fn: VelocityFn, x_lq: jax.Array,
                num_steps: int | jax.Array, *, remat: bool = False
                ) -> jax.Array:
  """The uniform-Euler rollout of the MSC loss.

  ``x ← x − (1/i)·f(x, ⌊i·1000/K⌋)`` for i = K…1 from ``x_lq``: the uniform
  rule for every K, including K = 2, 3, 4 (unlike :func:`euler_sample`).

  A Python int K (≥ 1) is unrolled. A traced int32 scalar K ∈ {1…10} runs a
  ``lax.scan`` over :data:`MSC_MAX_STEPS` steps whose body is a ``lax.cond``
  skipping steps j ≥ K, so one compiled program serves every K and only K
  network evaluations run.

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

  num_steps = jnp.asarray(num_steps, jnp.int32)
  ks = jnp.asarray(MSC_K_TABLE)[num_steps]  # (MSC_MAX_STEPS,)
  ws = jnp.asarray(MSC_W_TABLE)[num_steps]
  active = jnp.arange(MSC_MAX_STEPS) < num_steps

  def body(x, xs):
    k, w, on = xs
    x = jax.lax.cond(on, lambda y: step(y, k[None], w), lambda y: y, x)
    return x, None

  x, _ = jax.lax.scan(body, x_lq, (ks, ws, active))
  return x


def msc_loss(velocity_fn: VelocityFn, x_lq: jax.Array, x_gt: jax.Array,
             num_steps: int | jax.Array, *, mode: str,
             kind: str = 'l2') -> jax.Array:
  """Multi-step-consistency loss ``L_match(rollout_K(x_lq), x_gt)``.

  Args:
    velocity_fn: ``(x, k (1,) int32) -> velocity``; the differentiable
      model closure (online weights, as the reference).
    x_lq: (B, H, W, C) degraded image.
    x_gt: (B, H, W, C) clean image.
    num_steps: K, Python int or traced int32 scalar in {2…10}.
    mode: ``'reference'``: the released code's no-grad rollout
      (``stop_gradient`` on the whole rollout; changes only the logged loss,
      updates identical to ``'off'``); ``'paper'``: gradient flows through
      all K steps (each step rematerialised); ``'off'``: 0.0, the model is
      not called.
    kind: matching-loss kind (the reference reuses the configured one).

  Returns:
    Scalar loss.

  Raises:
    ValueError: unknown ``mode``.
  """
  if mode not in MSC_MODES:
    raise ValueError(f'Unknown MSC mode {mode!r}; expected one of '
                     f'{MSC_MODES}.')
  if mode == 'off':
    return jnp.zeros((), jnp.float32)
  if mode == 'reference':
    x = jax.lax.stop_gradient(msc_rollout(velocity_fn, x_lq, num_steps))
  else:
    x = msc_rollout(velocity_fn, x_lq, num_steps, remat=True)
  return matching_loss(x, x_gt, kind)


# ----------------------------------------------------------------------------
# Training loss.
# ----------------------------------------------------------------------------


def training_loss(
    velocity_fn: VelocityFn,
    x_lq: jax.Array,
    x_gt: jax.Array,
    rng: jax.Array,
    *,
    cumulative: bool = True,
    loss_kind: str = 'l2',
    match_weight: float = 1.0,
    msc_mode: str = 'reference',
    msc_weight: float = 0.3,
    noise_sigma: float = 0.0,
    base: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """IR-Flow's training loss ``w_m·L_match + w_msc·L_MSC`` (spec §3).

  The key is split once, ``noise_rng, k_rng, msc_rng = split(rng, 3)``,
  whatever the options: ``noise_rng`` draws the denoising noise,
  ``k_rng`` the per-sample times and ``msc_rng`` the MSC step count K.

  Args:
    velocity_fn: the differentiable model closure ``(x, k) -> velocity``;
      called with k of shape (B,) for the matching term, (1,) inside the MSC
      rollout and ``None`` when ``base``.
    x_lq: (B, H, W, C) degraded image; ignored when ``noise_sigma > 0``.
    x_gt: (B, H, W, C) clean image.
    rng: PRNG key; pass a fresh one each step.
    cumulative: target ``x_t − x_gt`` (True) or ``x_lq − x_gt``.
    loss_kind: matching-loss kind (also used by MSC, as the reference).
    match_weight: weight of the matching term (reference ``weight``).
    msc_mode: ``'reference'``, ``'paper'`` or ``'off'`` (see
      :func:`msc_loss`); ``msc_weight == 0`` also skips the rollout.
    msc_weight: weight of the MSC term (reference ``weighta``).
    noise_sigma: if > 0, ``x_lq = x_gt + σ·N(0, 1)`` is synthesised here
      (the denoising task; fresh noise per key, not clipped).
    base: the discriminative baseline: ``pred = velocity_fn(x_lq, None)``,
      target ``x_gt``, no MSC.

  Returns:
    ``(loss, metrics)`` with scalar metrics ``'match'``, ``'msc'`` and
    ``'msc_steps'`` (K, int32; 0 when no rollout ran).

  Raises:
    ValueError: unknown ``msc_mode`` or ``loss_kind``.
  """
  if msc_mode not in MSC_MODES:
    raise ValueError(f'Unknown MSC mode {msc_mode!r}; expected one of '
                     f'{MSC_MODES}.')
  noise_rng, k_rng, msc_rng = jax.random.split(rng, 3)
  if noise_sigma > 0:
    noise = jax.random.normal(noise_rng, x_gt.shape, x_gt.dtype)
    x_lq = x_gt + noise_sigma * noise

  if base:
    pred = velocity_fn(x_lq, None)
    match = matching_loss(pred, x_gt, loss_kind)
  else:
    k = sample_k(k_rng, x_gt.shape[0])
    x_t = interpolate(x_lq, x_gt, k)
    target = velocity_target(x_lq, x_gt, x_t, cumulative=cumulative)
    pred = velocity_fn(x_t, k)
    match = matching_loss(pred, target, loss_kind)

  if base or msc_mode == 'off' or msc_weight == 0:
    msc = jnp.zeros((), jnp.float32)
    msc_steps = jnp.zeros((), jnp.int32)
  else:
    msc_steps = jax.random.randint(msc_rng, (), MSC_MIN_STEPS,
                                   MSC_MAX_STEPS + 1, dtype=jnp.int32)
    msc = msc_loss(velocity_fn, x_lq, x_gt, msc_steps, mode=msc_mode,
                   kind=loss_kind)
  loss = match_weight * match + msc_weight * msc
  return loss, {'match': match, 'msc': msc, 'msc_steps': msc_steps}

