"""IR-Flow's losses: matching (l1, l2, SmoothL1, 1 − SSIM), MSC, training.

The training loss takes its random draws as an argument
(:func:`draw_training`, called by the step outside the loss), so a recorded
step of the reference replays through it (``tests/train_step_parity_test``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.ops import filters
from restorect_jax.methods.irflow.flow import (MSC_MAX_STEPS, MSC_MIN_STEPS,
                                               MSC_MODES, VelocityFn,
                                               interpolate, msc_rollout,
                                               sample_k, velocity_target)

LOSS_KINDS = ('l1', 'l2', 'sl1', 'ssim')
# SSIM constants (data in [0, 1]).
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


# ----------------------------------------------------------------------------
# Matching losses.
# ----------------------------------------------------------------------------


def _blur(x: jax.Array) -> jax.Array:
  """Per-channel 11×11 Gaussian filter, zero padding 5, same size (NHWC).

  The window is separable, so it runs as two 11-tap passes of shifted
  slices (XLA:CPU runs grouped ``lax.conv`` ~11× slower, stack.md §2i).
  """
  g = [float(t) for t in filters.gaussian_taps(_SSIM_WINDOW, _SSIM_SIGMA,
                                                  np.float32)]
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


def draw_training(rng: jax.Array, batch: int, shape: tuple[int, ...], *,
                  noise_sigma: float = 0.0, msc: bool = True
                  ) -> dict[str, jax.Array]:
  """Every random draw of one IR-Flow training step, outside the loss.

  The key is split once, ``noise_rng, k_rng, msc_rng = split(rng, 3)``,
  whatever the options (the same numbers as before the draws moved out of
  the loss): ``noise`` the denoising noise (only when ``noise_sigma > 0``),
  ``k`` the per-sample times, ``msc_steps`` the MSC step count K (only when
  ``msc``). The reference's names are ``k`` and ``msc_K``
  (``shared/parity/README.md``, "Training steps").

  Args:
    rng: PRNG key; a fresh one each step.
    batch: B.
    shape: the (B, H, W, C) image shape (for the denoising noise).
    noise_sigma: σ of the synthesised noise; 0 draws none.
    msc: whether the step runs an MSC rollout.
  """
  noise_rng, k_rng, msc_rng = jax.random.split(rng, 3)
  draws = {'k': sample_k(k_rng, batch)}
  if noise_sigma > 0:
    draws['noise'] = jax.random.normal(noise_rng, shape, jnp.float32)
  if msc:
    draws['msc_steps'] = jax.random.randint(
        msc_rng, (), MSC_MIN_STEPS, MSC_MAX_STEPS + 1, dtype=jnp.int32)
  return draws


def runs_msc(*, base: bool, msc_mode: str, msc_weight: float) -> bool:
  """Whether a training step runs the MSC rollout (and draws its K)."""
  if msc_mode not in MSC_MODES:
    raise ValueError(f'Unknown MSC mode {msc_mode!r}; expected one of '
                     f'{MSC_MODES}.')
  return not (base or msc_mode == 'off' or msc_weight == 0)


def training_loss(
    velocity_fn: VelocityFn,
    x_lq: jax.Array,
    x_gt: jax.Array,
    draws: dict[str, jax.Array],
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

  Args:
    velocity_fn: the differentiable model closure ``(x, k) -> velocity``;
      called with k of shape (B,) for the matching term, (1,) inside the MSC
      rollout and ``None`` when ``base``.
    x_lq: (B, H, W, C) degraded image; ignored when ``noise_sigma > 0``.
    x_gt: (B, H, W, C) clean image.
    draws: from :func:`draw_training` (``k``, ``noise``, ``msc_steps``).
    cumulative: target ``x_t − x_gt`` (True) or ``x_lq − x_gt``.
    loss_kind: matching-loss kind (also used by MSC, as the reference).
    match_weight: weight of the matching term (reference ``weight``).
    msc_mode: ``'reference'``, ``'paper'`` or ``'off'`` (see
      :func:`msc_loss`); ``msc_weight == 0`` also skips the rollout.
    msc_weight: weight of the MSC term (reference ``weighta``).
    noise_sigma: if > 0, ``x_lq = x_gt + σ·draws['noise']`` (the denoising
      task; not clipped).
    base: the discriminative baseline: ``pred = velocity_fn(x_lq, None)``,
      target ``x_gt``, no MSC.

  Returns:
    ``(loss, metrics)`` with scalar metrics ``'match'``, ``'msc'`` and
    ``'msc_steps'`` (K, int32; 0 when no rollout ran).

  Raises:
    ValueError: unknown ``msc_mode`` or ``loss_kind``.
  """
  with_msc = runs_msc(base=base, msc_mode=msc_mode, msc_weight=msc_weight)
  if noise_sigma > 0:
    x_lq = x_gt + noise_sigma * draws['noise'].astype(x_gt.dtype)

  if base:
    pred = velocity_fn(x_lq, None)
    match = matching_loss(pred, x_gt, loss_kind)
  else:
    k = jnp.asarray(draws['k']).reshape(-1).astype(jnp.int32)
    x_t = interpolate(x_lq, x_gt, k)
    target = velocity_target(x_lq, x_gt, x_t, cumulative=cumulative)
    pred = velocity_fn(x_t, k)
    match = matching_loss(pred, target, loss_kind)

  if not with_msc:
    msc = jnp.zeros((), jnp.float32)
    msc_steps = jnp.zeros((), jnp.int32)
  else:
    msc_steps = jnp.asarray(draws['msc_steps'], jnp.int32).reshape(())
    msc = msc_loss(velocity_fn, x_lq, x_gt, msc_steps, mode=msc_mode,
                   kind=loss_kind)
  loss = match_weight * match + msc_weight * msc
  return loss, {'match': match, 'msc': msc, 'msc_steps': msc_steps}
