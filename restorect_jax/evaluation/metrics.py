"""Host-side PSNR / SSIM in the BasicSR conventions (spec §5).

Everything here is NumPy on the host, in float64. Images are ``(H, W, C)``
(or ``(H, W)``) arrays on the uint8 scale, i.e. values in [0, 255] with a data
range of 255, as BasicSR's ``calculate_psnr`` / ``calculate_ssim`` expect.

Two flavours matter for matching the reference numbers:

* Quantisation (:func:`to_uint8`, from :mod:`restorect_jax.ops.quantize`):
  BasicSR's ``tensor2img`` *rounds* ``x * 255`` (``mode='round'``, used for
  validation during training); the RestoRect test script *truncates* with
  ``(x * 255).astype(uint8)`` (``mode='truncate'``).
* The Y channel (:func:`rgb_to_y`): BasicSR's ``bgr2ycbcr(y_only=True)``
  expects BGR, but RestoRect's ``evals/evaluation.py`` feeds it RGB arrays, so
  the published "Y" numbers use swapped R/B weights (``swapped=True``).

The published evaluation protocol is therefore
``psnr(pred, gt, crop_border=5, y_channel=True, swapped_y=True)`` (after the
256x256 resize and mean/variance correction that the script also does, which
is not part of this module). BasicSR does the Y conversion in float32; here it
is float64, which moves PSNR by at most ~1e-5 dB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from restorect_jax.ops import color, filters, quantize, resample

# SSIM constants (Wang et al. 2004, as in BasicSR): K1 = 0.01, K2 = 0.03 on a
# data range of 255.
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_SSIM_KSIZE = 11
_SSIM_SIGMA = 1.5


# Quantisation and the BT.601 Y live in ops; these are the names the metric
# code (and its callers) use. ``rgb_to_y(img, swapped)``: BasicSR's
# ``bgr2ycbcr(y_only=True)`` in float64; ``swapped=True`` is the references'
# RGB array passed to the BGR function.
to_uint8 = quantize.to_uint8
rgb_to_y = color.y_bt601


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool,
             swapped_y: bool) -> tuple[np.ndarray, np.ndarray]:
  """Checks shapes, crops borders, optionally converts to Y; HWC float64."""
  a = np.asarray(a)
  b = np.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f'Image shapes differ: {a.shape} vs {b.shape}.')
  if a.ndim == 2:
    a, b = a[..., None], b[..., None]
  if a.ndim != 3:
    raise ValueError(f'Expected (H, W) or (H, W, C) images, got {a.shape}.')
  if crop_border < 0:
    raise ValueError(f'crop_border must be >= 0, got {crop_border}.')
  if crop_border:
    a = a[crop_border:-crop_border, crop_border:-crop_border]
    b = b[crop_border:-crop_border, crop_border:-crop_border]
  if a.shape[0] == 0 or a.shape[1] == 0:
    raise ValueError('crop_border leaves an empty image.')
  a = a.astype(np.float64)
  b = b.astype(np.float64)
  if y_channel and a.shape[-1] == 3:
    a = rgb_to_y(a, swapped_y)[..., None]
    b = rgb_to_y(b, swapped_y)[..., None]
  return a, b


def psnr(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0,
         y_channel: bool = False, swapped_y: bool = False) -> float:
  """PSNR in dB with data range 255, as BasicSR's ``calculate_psnr``.

  Args:
    a: ``(H, W, C)`` or ``(H, W)`` image on the uint8 scale.
    b: Image of the same shape.
    crop_border: Pixels removed from each side before the comparison.
    y_channel: Compare the BT.601 Y channel (3-channel inputs only; other
      channel counts are compared as they are, like BasicSR).
    swapped_y: With ``y_channel``, use the references' R/B-swapped weights.

  Returns:
    The PSNR; ``inf`` for identical images.
  """
  a, b = _prepare(a, b, crop_border, y_channel, swapped_y)
  mse = float(np.mean((a - b) ** 2))
  if mse == 0.0:
    return math.inf
  return 10.0 * math.log10(255.0 ** 2 / mse)


def _filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
  """Separable 2-D correlation of ``x`` (H, W) with ``outer(k, k)``, 'valid'.

  Equals ``cv2.filter2D(x, -1, outer(k, k))[r:-r, r:-r]`` for a kernel of
  radius ``r``: the border handling of ``filter2D`` never reaches the kept
  region.
  """
  n = k.shape[0]
  h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
  rows = np.zeros((h, x.shape[1]), np.float64)
  for i in range(n):
    rows += k[i] * x[i:i + h]
  out = np.zeros((h, w), np.float64)
  for j in range(n):
    out += k[j] * rows[:, j:j + w]
  return out


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """BasicSR's per-pixel SSIM map of two 2-D float images (valid region).

  Args:
    a: ``(H, W)`` image on the [0, 255] scale; H, W >= 11.
    b: Image of the same shape.

  Returns:
    ``(H - 10, W - 10)`` float64 SSIM values.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f'Expected two equal 2-D images, got {a.shape}, '
                     f'{b.shape}.')
  if min(a.shape) < _SSIM_KSIZE:
    raise ValueError(f'SSIM needs images of at least {_SSIM_KSIZE}x'
                     f'{_SSIM_KSIZE} (after cropping), got {a.shape}.')
  k = filters.gaussian_taps(_SSIM_KSIZE, _SSIM_SIGMA)
  mu1 = _filter_valid(a, k)
  mu2 = _filter_valid(b, k)
  mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
  sigma1_sq = _filter_valid(a * a, k) - mu1_sq
  sigma2_sq = _filter_valid(b * b, k) - mu2_sq
  sigma12 = _filter_valid(a * b, k) - mu1_mu2
  num = (2.0 * mu1_mu2 + _SSIM_C1) * (2.0 * sigma12 + _SSIM_C2)
  den = (mu1_sq + mu2_sq + _SSIM_C1) * (sigma1_sq + sigma2_sq + _SSIM_C2)
  return num / den


def ssim(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0,
         y_channel: bool = False, swapped_y: bool = False) -> float:
  """SSIM as BasicSR's ``calculate_ssim``: per channel, then averaged.

  11x11 Gaussian window (sigma 1.5), statistics on the 'valid' region only
  (5 pixels lost on every side), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
  population (biased) variances.

  Args:
    a: ``(H, W, C)`` or ``(H, W)`` image on the uint8 scale.
    b: Image of the same shape.
    crop_border: Pixels removed from each side before the comparison.
    y_channel: Compare the BT.601 Y channel (3-channel inputs only).
    swapped_y: With ``y_channel``, use the references' R/B-swapped weights.

  Returns:
    The mean SSIM (1.0 for identical images).
  """
  a, b = _prepare(a, b, crop_border, y_channel, swapped_y)
  vals = [ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[-1])]
  return float(np.mean(vals))


def psnr_ssim(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0,
              y_channel: bool = False,
              swapped_y: bool = False) -> dict[str, float]:
  """``{'psnr': ..., 'ssim': ...}`` with the same options for both."""
  kw = dict(crop_border=crop_border, y_channel=y_channel, swapped_y=swapped_y)
  return {'psnr': psnr(a, b, **kw), 'ssim': ssim(a, b, **kw)}


class MetricAverager:
  """Accumulates per-image metric values and reports mean / std / count.

  Each metric name keeps its own list, so metrics may be added for a subset
  of the images. The std is the population std (``ddof=0``). Non-finite
  values (e.g. an ``inf`` PSNR for a perfect image) are kept and propagate
  into the mean, as ``np.mean`` would.

  Example::

    avg = MetricAverager()
    for out, gt in pairs:
      avg.update(psnr=psnr(out, gt), ssim=ssim(out, gt))
    avg.mean()  # {'psnr': 23.1, 'ssim': 0.84}
  """

  def __init__(self) -> None:
    self._values: dict[str, list[float]] = {}

  def update(self, values: Mapping[str, float] | None = None,
             **kwargs: float) -> None:
    """Adds one value per given metric name (from a mapping and/or kwargs)."""
    merged = dict(values or {}, **kwargs)
    for name, v in merged.items():
      self._values.setdefault(name, []).append(float(v))

  def reset(self) -> None:
    """Forgets every value."""
    self._values.clear()

  @property
  def names(self) -> list[str]:
    """Metric names in first-seen order."""
    return list(self._values)

  def values(self, name: str) -> np.ndarray:
    """All values recorded for ``name`` (float64, in insertion order)."""
    return np.asarray(self._values[name], np.float64)

  def count(self, name: str) -> int:
    """Number of values recorded for ``name`` (0 if never seen)."""
    return len(self._values.get(name, ()))

  def mean(self) -> dict[str, float]:
    """Mean of every metric."""
    return {k: float(np.mean(v)) for k, v in self._values.items()}

  def std(self) -> dict[str, float]:
    """Population standard deviation of every metric."""
    return {k: float(np.std(v)) for k, v in self._values.items()}

  def summary(self) -> dict[str, float]:
    """Flat dict: ``name`` -> mean, ``name_std`` -> std, ``name_n`` -> count."""
    out: dict[str, float] = {}
    for k, v in self._values.items():
      out[k] = float(np.mean(v))
      out[f'{k}_std'] = float(np.std(v))
      out[f'{k}_n'] = float(len(v))
    return out

  def __len__(self) -> int:
    """The largest count over all metrics."""
    return max((len(v) for v in self._values.values()), default=0)


def ssim_matlab(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0,
                y_channel: bool = True, swapped_y: bool = False) -> float:
  """SSIM as Wang et al.'s ``ssim.m`` (the MATLAB reference code).

  Differs from :func:`ssim` (BasicSR) in two ways: colour images are scored
  on MATLAB's ``rgb2ycbcr`` luma of uint8 images, which is *rounded* to
  integers, and images are first downsampled by
  ``f = max(1, round(min(H, W) / 256))`` with an ``f x f`` averaging filter
  ('symmetric' borders) and ``(1:f:end, 1:f:end)`` subsampling. Then the
  11x11 Gaussian (sigma 1.5) 'valid' SSIM map of :func:`ssim_map` is
  averaged (K = 0.01, 0.03, L = 255).

  Args:
    a: ``(H, W)`` gray or ``(H, W, 3)`` RGB image on the uint8 scale.
    b: Image of the same shape.
    crop_border: Pixels removed from each side before everything else.
    y_channel: Score colour images on Y (as the MATLAB scripts of
      Restormer & co. do); if False each channel is scored and averaged.
    swapped_y: With ``y_channel``, use R/B-swapped luma weights.

  Returns:
    The mean SSIM.
  """
  a, b = _prepare(a, b, crop_border, False, False)
  if y_channel and a.shape[-1] == 3:  # MATLAB's rgb2ycbcr luma is rounded
    a = np.round(rgb_to_y(a, swapped_y))[..., None]
    b = np.round(rgb_to_y(b, swapped_y))[..., None]
  f = max(1, math.floor(min(a.shape[0], a.shape[1]) / 256.0 + 0.5))
  vals = []
  for c in range(a.shape[-1]):
    x, y = a[..., c], b[..., c]
    if f > 1:
      x = resample.matlab_box_downsample(x, f)
      y = resample.matlab_box_downsample(y, f)
    vals.append(ssim_map(x, y).mean())
  return float(np.mean(vals))
