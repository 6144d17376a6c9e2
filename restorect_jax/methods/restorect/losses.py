"""Loss functions of RestoRect as pure ``jax.numpy`` functions (spec §2.7-2.8).

Images are NHWC float32; prior vectors are (B, 256). Every function is pure and
jit-compatible. The behaviour follows the PyTorch reference as recorded in the
parity fixtures (``shared/parity/restorect/loss_*.npz``):

* ``kd_loss``: ``KL(softmax(z_T / T) || softmax(ẑ / T))`` (teacher = target
  distribution), torch ``'batchmean'`` reduction, summed over list items; the
  reverse direction is off by ~10 % on the fixture.
* ``flex_loss``: cross-normalisation with the student's statistics, per-(b, c)
  95th-percentile outlier mask on 4-D features, resolution weight, per-layer
  weights (1.0 past the end of the weight list), mean over layers, SNR gate
  ``t_norm < snr_threshold`` (``t_norm = t / max_t`` only when ``max_t > 1``).
* ``hvi_color_loss``: polarized HVI with π written as 3.14159.
* DecomNet side terms: anisotropic diffusion, gradient-aware weights
  ``exp(-sqrt(|∂x L|² + |∂y L|² + 1e-8))`` on absolute forward differences
  that are replicate-padded at the far edge, and the illumination smoothing
  term that pairs the unpadded differences with the weights shifted by one
  pixel (``w[..., 1:]``).
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp

ArrayLike = jax.Array | float

# π as written in the reference HVI transform.
_PI_HVI = 3.14159
_HVI_EPS = 1e-6
# FLEX class defaults: 1 / sqrt([4, 2, 1, 1]).
FLEX_DEFAULT_LAYER_WEIGHTS = tuple(1.0 / math.sqrt(r) for r in (4, 2, 1, 1))
FLEX_DEFAULT_LOSS_WEIGHT = 0.15
# Sobel cross-correlation kernel for ∂/∂x (columns); ∂/∂y is its transpose.
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = tuple(zip(*_SOBEL_X))
_BOX3 = ((1.0 / 9,) * 3,) * 3


# ----------------------------------------------------------------------------
# Basic reductions.
# ----------------------------------------------------------------------------


def l1_loss(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean absolute error (BasicSR ``L1Loss``, reduction ``mean``).

  Args:
    a: prediction, any shape.
    b: target, same shape as ``a``.

  Returns:
    Scalar ``mean(|a - b|)``.
  """
  return jnp.mean(jnp.abs(a - b))


def mse_loss(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean squared error (torch ``F.mse_loss``, reduction ``mean``).

  Args:
    a: prediction, any shape.
    b: target, broadcast-compatible with ``a``.

  Returns:
    Scalar ``mean((a - b)²)``.
  """
  return jnp.mean(jnp.square(a - b))


# ----------------------------------------------------------------------------
# Knowledge distillation on prior vectors.
# ----------------------------------------------------------------------------


def kd_loss(teacher: Sequence[jax.Array], student: Sequence[jax.Array],
            temperature: float = 0.15) -> tuple[jax.Array, jax.Array]:
  """KDLoss of the reference: a KL term and an L1 term over lists of priors.

  The KL term is ``Σ_i KL(softmax(t_i / T) || softmax(s_i / T))`` with the
  teacher as the target distribution and torch's ``'batchmean'`` reduction
  (sum over all elements divided by the batch size). No ``T²`` factor.

  Args:
    teacher: list of teacher priors, each (B, D).
    student: list of student priors, same shapes as ``teacher``.
    temperature: softmax temperature T.

  Returns:
    ``(kl, l1)``: ``Σ_i KL_i`` and ``Σ_i mean|s_i - t_i|``, both scalars.
  """
  if len(teacher) != len(student):
    raise ValueError(
        f'teacher/student lists differ: {len(teacher)} vs {len(student)}.')
  kl = jnp.zeros((), jnp.float32)
  l1 = jnp.zeros((), jnp.float32)
  for t, s in zip(teacher, student):
    log_p = jax.nn.log_softmax(t / temperature, axis=-1)
    log_q = jax.nn.log_softmax(s / temperature, axis=-1)
    p = jnp.exp(log_p)
    kl = kl + jnp.sum(p * (log_p - log_q)) / t.shape[0]
    l1 = l1 + l1_loss(s, t)
  return kl, l1


# ----------------------------------------------------------------------------
# FLEX feature distillation.
# ----------------------------------------------------------------------------


def _flex_reduce_axes(x: jax.Array) -> tuple[int, ...]:
  """Axes of the per-sample statistics: features (2-D) or spatial (≥ 3-D)."""
  if x.ndim == 2:
    return (1,)
  if x.ndim >= 3:
    # Channels-last: every axis between batch and channels.
    return tuple(range(1, x.ndim - 1))
  raise ValueError(f'FLEX features need ndim >= 2, got shape {x.shape}.')


def flex_cross_normalize(t: jax.Array, s: jax.Array
                         ) -> tuple[jax.Array, jax.Array]:
  """Normalises teacher and student features with the student's statistics.

  For (B, D) vectors mean and population std are taken over D per sample; for
  channels-last maps (B, H, W, C) over H, W per (sample, channel). ``1e-8`` is
  added to the std.

  Args:
    t: teacher features.
    s: student features, same shape.

  Returns:
    ``(t_hat, s_hat) = ((t - μ_s) / σ_s, (s - μ_s) / σ_s)``.
  """
  axes = _flex_reduce_axes(s)
  mean = jnp.mean(s, axis=axes, keepdims=True)
  std = jnp.std(s, axis=axes, keepdims=True) + 1e-8
  return (t - mean) / std, (s - mean) / std


def flex_outlier_mask(s_hat: jax.Array, percentile: float = 95.0
                      ) -> jax.Array:
  """Reliability mask: 1 where ``|ŝ|`` is at most its per-(b, c) percentile.

  Only 4-D (B, H, W, C) features are masked; the percentile of ``|ŝ|`` over
  H·W uses linear interpolation (as ``torch.quantile``). Other ranks get an
  all-ones mask.

  Args:
    s_hat: normalised student features.
    percentile: percentile in [0, 100].

  Returns:
    Float mask of the shape of ``s_hat`` (1 = keep, 0 = outlier).
  """
  if s_hat.ndim != 4:
    return jnp.ones_like(s_hat)
  mag = jnp.abs(s_hat)
  thresh = jnp.percentile(mag, percentile, axis=(1, 2), keepdims=True,
                          method='linear')
  return (mag <= thresh).astype(s_hat.dtype)


def flex_resolution_weight(shape: Sequence[int]) -> float:
  """Resolution weight ``max((64·64 / (H·W))^0.25, 0.1)`` for 4-D maps.

  Args:
    shape: feature shape, (B, H, W, C) for maps; other ranks give 1.

  Returns:
    The weight as a Python float.
  """
  if len(shape) != 4:
    return 1.0
  h, w = shape[1], shape[2]
  return max((64.0 * 64.0 / (h * w)) ** 0.25, 0.1)


def flex_layer_loss(
    t: jax.Array,
    s: jax.Array,
    layer_index: int,
    *,
    layer_weights: Sequence[float] | None = FLEX_DEFAULT_LAYER_WEIGHTS,
    outlier_percentile: float = 95.0,
    apply_cross_norm: bool = True,
    apply_outlier_detection: bool = True,
) -> jax.Array:
  """Weighted FLEX loss of one (teacher, student) pair.

  ``w_layer · w_res · Σ((t̂ - ŝ)² · mask) / (Σ mask + 1e-8)``, where
  ``w_layer = layer_weights[layer_index]`` (1.0 past the end of the list).

  Args:
    t: teacher features, (B, D) or (B, H, W, C).
    s: student features, same shape.
    layer_index: position of the pair in the list.
    layer_weights: per-layer weights; None means the class defaults
      ``1/sqrt([4, 2, 1, 1])``.
    outlier_percentile: percentile of the outlier mask (4-D only).
    apply_cross_norm: normalise with the student's statistics.
    apply_outlier_detection: mask outliers of 4-D features.

  Returns:
    Scalar layer loss (without the global ``loss_weight``).
  """
  if layer_weights is None:
    layer_weights = FLEX_DEFAULT_LAYER_WEIGHTS
  if apply_cross_norm:
    t_hat, s_hat = flex_cross_normalize(t, s)
  else:
    t_hat, s_hat = t, s
  if apply_outlier_detection and s_hat.ndim == 4:
    mask = flex_outlier_mask(s_hat, outlier_percentile)
  else:
    mask = jnp.ones_like(s_hat)
  if layer_index < len(layer_weights):
    w_layer = jnp.asarray(layer_weights, jnp.float32)[layer_index]
  else:
    w_layer = 1.0
  w_res = flex_resolution_weight(s_hat.shape)
  num = jnp.sum(jnp.square(t_hat - s_hat) * mask)
  den = jnp.sum(mask) + 1e-8
  return w_layer * w_res * (num / den)


def flex_loss(
    teacher: Sequence[jax.Array],
    student: Sequence[jax.Array],
    *,
    loss_weight: float | None = 0.5,
    layer_weights: Sequence[float] | None = (2.0, 1.41, 1.0),
    outlier_percentile: float = 95.0,
    timestep: ArrayLike | None = None,
    max_timestep: ArrayLike | None = 1.0,
    snr_threshold: float = 0.4,
    apply_cross_norm: bool = True,
    apply_outlier_detection: bool = True,
) -> jax.Array:
  """FLEX loss over lists of features (defaults: the S2 training config).

  ``loss_weight · mean_i flex_layer_loss(t_i, s_i, i)`` over the pairs whose
  shapes agree (others are skipped, as in the reference; 0 if none remain).
  SNR gate: with ``t_norm = timestep / max_timestep`` when ``max_timestep > 1``
  and ``t_norm = timestep`` otherwise, the loss is applied only when
  ``t_norm < snr_threshold`` and is 0 otherwise; no gate when ``timestep`` is
  None.

  Args:
    teacher: teacher features, each (B, D) or (B, H, W, C).
    student: student features, same shapes.
    loss_weight: global weight; None means the class default 0.15.
    layer_weights: per-layer weights; None means the class defaults
      ``1/sqrt([4, 2, 1, 1])``.
    outlier_percentile: percentile of the outlier mask (4-D only).
    timestep: diffusion/flow time, Python or jnp scalar, or None.
    max_timestep: normaliser of ``timestep`` (used only when > 1).
    snr_threshold: gate threshold.
    apply_cross_norm: normalise with the student's statistics.
    apply_outlier_detection: mask outliers of 4-D features.

  Returns:
    Scalar loss.
  """
  if loss_weight is None:
    loss_weight = FLEX_DEFAULT_LOSS_WEIGHT
  n_layers = min(len(teacher), len(student))
  layer_losses = [
      flex_layer_loss(
          teacher[i], student[i], i, layer_weights=layer_weights,
          outlier_percentile=outlier_percentile,
          apply_cross_norm=apply_cross_norm,
          apply_outlier_detection=apply_outlier_detection)
      for i in range(n_layers) if teacher[i].shape == student[i].shape
  ]
  if not layer_losses:
    return jnp.zeros((), jnp.float32)
  loss = loss_weight * (sum(layer_losses) / len(layer_losses))
  if timestep is None:
    return loss
  t = jnp.asarray(timestep, jnp.float32)
  if max_timestep is not None:
    max_t = jnp.asarray(max_timestep, jnp.float32)
    t = jnp.where(max_t > 1.0, t / max_t, t)
  return jnp.where(t < snr_threshold, loss, jnp.zeros_like(loss))


def flex_loss_default(teacher: Sequence[jax.Array],
                      student: Sequence[jax.Array], **kwargs) -> jax.Array:
  """FLEX with the class defaults (loss weight 0.15, 1/sqrt([4,2,1,1])).

  Args:
    teacher: teacher features.
    student: student features.
    **kwargs: other keyword arguments of ``flex_loss``.

  Returns:
    Scalar loss.
  """
  return flex_loss(teacher, student, loss_weight=FLEX_DEFAULT_LOSS_WEIGHT,
                   layer_weights=FLEX_DEFAULT_LAYER_WEIGHTS, **kwargs)


# ----------------------------------------------------------------------------
# Polarized HVI colour loss.
# ----------------------------------------------------------------------------


def _rgb_to_hue_saturation(rgb: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Hue in [0, 1] and HSV saturation of (..., 3) RGB in [0, 1]."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  max_val = jnp.max(rgb, axis=-1)
  min_val = jnp.min(rgb, axis=-1)
  diff = max_val - min_val
  safe_diff = jnp.maximum(diff, _HVI_EPS)
  max_idx = jnp.argmax(rgb, axis=-1)
  hue = jnp.where(
      max_idx == 0, (g - b) / safe_diff,
      jnp.where(max_idx == 1, 2.0 + (b - r) / safe_diff,
                4.0 + (r - g) / safe_diff))
  hue = jnp.where(diff > _HVI_EPS, hue, 0.0) / 6.0
  hue = jnp.where(hue < 0.0, hue + 1.0, hue)
  hue = jnp.clip(hue, 0.0, 1.0)
  safe_max = jnp.maximum(max_val, _HVI_EPS)
  sat = jnp.where(max_val > _HVI_EPS, diff / safe_max, 0.0)
  return hue, sat


def rgb_to_hvi(img: jax.Array, k: ArrayLike = 1.0
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Polarized HVI transform of the reference (spec §2.7).

  The image is clamped to [0, 1]; ``I = max(R, G, B)``;
  ``C_k = clamp(k, 0.1, 5)·sin(π·I/2) + 1e-6``;
  ``H' = C_k·S·cos(π·hue/3)``, ``V' = C_k·S·sin(π·hue/3)`` with π = 3.14159.

  Args:
    img: RGB images (B, H, W, 3).
    k: intensity-collapse parameter, Python float or jnp scalar (learnable).

  Returns:
    ``(H', V', I)``, each (B, H, W, 1).
  """
  rgb = jnp.clip(img, 0.0, 1.0)
  hue, sat = _rgb_to_hue_saturation(rgb)
  i_max = jnp.max(rgb, axis=-1)
  k = jnp.clip(jnp.asarray(k, rgb.dtype), 0.1, 5.0)
  c_k = k * jnp.sin(_PI_HVI * i_max / 2) + _HVI_EPS
  h_map = c_k * sat * jnp.cos(_PI_HVI * hue / 3)
  v_map = c_k * sat * jnp.sin(_PI_HVI * hue / 3)
  return h_map[..., None], v_map[..., None], i_max[..., None]


def hvi_color_loss(pred: jax.Array, gt: jax.Array, *, weight: float = 0.05,
                   k: ArrayLike = 1.0) -> jax.Array:
  """Polarized HVI colour loss ``weight·(L1(H') + L1(V') + L1(I))``.

  Returns 0 when an input, an HVI map or the sum contains a NaN.

  Args:
    pred: restored images (B, H, W, 3).
    gt: ground truth (B, H, W, 3).
    weight: loss weight.
    k: HVI intensity-collapse parameter (clamped to [0.1, 5]).

  Returns:
    Scalar loss.
  """
  hvi_p = rgb_to_hvi(pred, k)
  hvi_g = rgb_to_hvi(gt, k)
  total = sum(l1_loss(a, b) for a, b in zip(hvi_p, hvi_g))
  has_nan = jnp.isnan(pred).any() | jnp.isnan(gt).any() | jnp.isnan(total)
  for m in hvi_p + hvi_g:
    has_nan = has_nan | jnp.isnan(m).any()
  return jnp.where(has_nan, 0.0, weight * total)


# ----------------------------------------------------------------------------
# DecomNet side terms (spec §2.8).
# ----------------------------------------------------------------------------


def _filter3x3(x: jax.Array, kernel: Sequence[Sequence[float]]) -> jax.Array:
  """Per-channel 3x3 cross-correlation with zero padding, NHWC.

  Written as a sum of shifted slices (depthwise convs are slow on XLA:CPU).
  """
  h, w = x.shape[1], x.shape[2]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = jnp.zeros_like(x)
  for i in range(3):
    for j in range(3):
      if kernel[i][j] != 0.0:
        out = out + kernel[i][j] * xp[:, i:i + h, j:j + w, :]
  return out


def anisotropic_diffusion(img: jax.Array, s: ArrayLike = 0.1) -> jax.Array:
  """Anisotropic diffusion operator A(img), per channel.

  ``c = exp(clamp(-(|∇|/s)², -10, 0))`` with Sobel gradients (zero padding),
  ``|∇| = sqrt(gx² + gy² + 1e-8)`` and ``s = clamp(s, 0.01, 1)``;
  ``A = box3x3(c·gx + c·gy)`` (mean filter, zero padding).

  Args:
    img: images (B, H, W, C).
    s: sensitivity parameter (``anisotropic_diffusion.s``), float or scalar.

  Returns:
    A(img), (B, H, W, C).
  """
  s = jnp.clip(jnp.asarray(s, img.dtype), 0.01, 1.0)
  gx = _filter3x3(img, _SOBEL_X)
  gy = _filter3x3(img, _SOBEL_Y)
  mag = jnp.sqrt(gx**2 + gy**2 + 1e-8)
  c = jnp.exp(jnp.clip(-jnp.square(mag / s), -10.0, 0.0))
  return _filter3x3(c * gx + c * gy, _BOX3)


def _forward_diffs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Unpadded forward differences along W and H: (B,H,W-1,C), (B,H-1,W,C)."""
  return x[:, :, 1:, :] - x[:, :, :-1, :], x[:, 1:, :, :] - x[:, :-1, :, :]


def gradient_weighting(illum: jax.Array) -> jax.Array:
  """GradientAwareWeighting maps ``exp(-sqrt(gx² + gy² + 1e-8))``.

  ``gx = |∂x L|``, ``gy = |∂y L|`` are absolute forward differences whose last
  column / row is replicated (the difference itself, so the far edge repeats
  the last difference rather than being 0).

  Args:
    illum: illumination map (B, H, W, C) (the reference passes L expanded to
      three channels; the maps are the same per channel).

  Returns:
    Weights (B, H, W, C) in (0, 1].
  """
  dx, dy = _forward_diffs(illum)
  gx = jnp.abs(dx)
  gy = jnp.abs(dy)
  gx = jnp.concatenate([gx, gx[:, :, -1:, :]], axis=2)
  gy = jnp.concatenate([gy, gy[:, -1:, :, :]], axis=1)
  return 1.0 / jnp.exp(jnp.sqrt(gx**2 + gy**2 + 1e-8))


def illumination_smoothing(illum: jax.Array) -> jax.Array:
  """Gradient-weighted illumination smoothness (unweighted by the 0.05/0.2).

  ``mean((w[:, :, 1:]·∂x L)²) + mean((w[:, 1:]·∂y L)²)`` with
  ``w = gradient_weighting(L)`` and unpadded forward differences; the weights
  are offset by one pixel against the differences, as in the reference.
  Replicating L to three channels does not change the value.

  Args:
    illum: illumination (B, H, W, 1) or (B, H, W, 3).

  Returns:
    Scalar.
  """
  w = gradient_weighting(illum)
  dx, dy = _forward_diffs(illum)
  return (jnp.mean(jnp.square(w[:, :, 1:, :] * dx)) +
          jnp.mean(jnp.square(w[:, 1:, :, :] * dy)))


def texture_consistency(img: jax.Array, refl: jax.Array,
                        s: ArrayLike = 0.1) -> jax.Array:
  """``L1(A(img), A(R))`` (unweighted).

  Args:
    img: input images (B, H, W, 3).
    refl: reflectance R (B, H, W, 3).
    s: anisotropic-diffusion sensitivity.

  Returns:
    Scalar.
  """
  return l1_loss(anisotropic_diffusion(img, s),
                 anisotropic_diffusion(refl, s))


def reconstruction(img: jax.Array, refl: jax.Array,
                   illum: jax.Array) -> jax.Array:
  """Retinex reconstruction error ``MSE(R·L, img)`` (unweighted).

  Args:
    img: input images (B, H, W, 3).
    refl: reflectance (B, H, W, 3).
    illum: illumination (B, H, W, 1), broadcast over channels.

  Returns:
    Scalar.
  """
  return mse_loss(refl * illum, img)


def decom_constraints(
    img: jax.Array,
    refl: jax.Array,
    illum: jax.Array,
    s: ArrayLike = 0.1,
    weights: tuple[float, float, float] = (0.05, 0.05, 0.05),
) -> dict[str, jax.Array]:
  """The three weighted DecomNet side terms, as the reference logs them.

  Args:
    img: input images (B, H, W, 3).
    refl: reflectance R (B, H, W, 3).
    illum: illumination L (B, H, W, 1).
    s: anisotropic-diffusion sensitivity (``anisotropic_diffusion.s``).
    weights: (texture, smoothing, reconstruction) weights; S1 uses
      (0.05, 0.05, 0.05), S2 (0.05, 0.2, 0.05).

  Returns:
    Dict with ``texture_consistency``, ``illumination_smoothing`` and
    ``reconstruction``, each a weighted scalar.
  """
  w_tex, w_smooth, w_rec = weights
  return {
      'texture_consistency': w_tex * texture_consistency(img, refl, s),
      'illumination_smoothing': w_smooth * illumination_smoothing(illum),
      'reconstruction': w_rec * reconstruction(img, refl, illum),
  }
