"""UIQM and UCIQE, no-reference underwater scores, as RestoRect computes them.

Both follow RestoRect's ``evals/evaluation.py`` (spec §5), which differs
from other published code in several places; those choices are kept so the
authors' numbers can be reproduced. All arithmetic here is float64 (the
reference mixes float32 in; the difference is ~1e-6 relative).

UCIQE (Yang & Sowmya 2015), RestoRect variant, on [0, 1] RGB:

* CIELAB from ``skimage.color.rgb2lab`` (D65); ``l = L / 100 + eps``,
  ``a' = (a + 128) / 255``, ``b' = (b + 128) / 255``;
* chroma ``c = sqrt(a'^2 + b'^2)``, saturation ``s = c / sqrt(c^2 + l^2)``;
* ``sigma_c = sqrt(mean(|1 - (mean(c) / (c + eps))^2|))`` (a relative spread
  of the chroma, not its standard deviation);
* ``con_l`` = 98th minus 2nd percentile of ``l`` (NumPy linear percentiles);
* ``UCIQE = 0.4680 sigma_c + 0.2745 con_l + 0.2576 mean(s)``.

UIQM (Panetta, Gao & Agaian 2016), on [0, 255] RGB:

* UICM: ``RG = R - G``, ``YB = (R + G) / 2 - B``; asymmetric alpha-trimmed
  means with ``T_L = ceil(0.1 K)``, ``T_R = floor(0.1 K)`` of the sorted
  values, summing sorted values ``T_L + 1 .. K - T_R - 1`` (0-based; one
  more than ``T_L`` is dropped on the left, as in the reference) divided by
  ``K - T_L - T_R``; variances about those means;
  ``UICM = -0.0268 sqrt(mu_RG^2 + mu_YB^2) + 0.1586 sqrt(s_RG + s_YB)``;
* UISM: per channel, Sobel magnitude (``scipy.ndimage.sobel``, 'reflect')
  scaled to a maximum of 255, times the channel; EME over 10x10 blocks
  ``2 / (k1 k2) sum log(max / min)`` (blocks with a zero min or max add 0);
  weights 0.299, 0.587, 0.144 (sic: 0.144, not 0.114); a flat channel
  scores 0 here (the reference returns NaN: it divides by a zero maximum);
* UIConM: over 10x10 blocks of all three channels together,
  ``-1 / (k1 k2) sum (max - min) / (max + min) log((max - min) / (max + min))``
  (blocks with a zero difference or sum add 0);
* ``UIQM = 0.0282 UICM + 0.2953 UISM + 3.5753 UIConM``.

Blocks: ``k1 = W // 10`` columns and ``k2 = H // 10`` rows; the remainder on
the right and bottom is dropped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.ndimage
from skimage import color

from restorect_jax.evaluation.iqa import _common

_EPS = float(np.finfo(np.float64).eps)
UCIQE_COEFFS = (0.4680, 0.2745, 0.2576)
UIQM_COEFFS = (0.0282, 0.2953, 3.5753)
UISM_WEIGHTS = (0.299, 0.587, 0.144)
BLOCK = 10


def uciqe(img: Any) -> float:
  """UCIQE of an RGB image (RestoRect variant; higher = better).

  Args:
    img: ``(H, W, 3)`` RGB, uint8 (0..255) or float (0..1).

  Returns:
    The score (typically 0.4 .. 0.7 for natural images).
  """
  x = _common.to_float01(_common.check_image(img))
  lab = color.rgb2lab(x)
  lum = lab[..., 0].ravel() / 100.0 + _EPS
  a = (lab[..., 1].ravel() + 128.0) / 255.0
  b = (lab[..., 2].ravel() + 128.0) / 255.0
  chroma = np.sqrt(a * a + b * b)
  sat = chroma / np.sqrt(chroma * chroma + lum * lum)
  mean_chroma = np.mean(chroma)
  sigma_c = np.sqrt(np.mean(np.abs(1.0 - (mean_chroma / (chroma + _EPS))
                                   ** 2)))
  con_l = np.percentile(lum, 98) - np.percentile(lum, 2)
  c1, c2, c3 = UCIQE_COEFFS
  return float(c1 * sigma_c + c2 * con_l + c3 * np.mean(sat))


def _trimmed_mean(x: np.ndarray, alpha_l: float = 0.1,
                  alpha_r: float = 0.1) -> float:
  """The asymmetric alpha-trimmed mean of the reference (see module doc)."""
  x = np.sort(x)
  k = x.size
  t_l = math.ceil(alpha_l * k)
  t_r = math.floor(alpha_r * k)
  return float(np.sum(x[t_l + 1:k - t_r]) / (k - t_l - t_r))


def uicm(x: np.ndarray) -> float:
  """Colourfulness of a ``(H, W, 3)`` float image on [0, 255]."""
  r, g, b = (x[..., i].ravel() for i in range(3))
  rg = r - g
  yb = (r + g) / 2.0 - b
  mu_rg, mu_yb = _trimmed_mean(rg), _trimmed_mean(yb)
  s_rg = float(np.mean((rg - mu_rg) ** 2))
  s_yb = float(np.mean((yb - mu_yb) ** 2))
  return (-0.0268 * math.sqrt(mu_rg ** 2 + mu_yb ** 2)
          + 0.1586 * math.sqrt(s_rg + s_yb))


def _blocks(x: np.ndarray) -> np.ndarray:
  """``(H, W, ...)`` -> ``(k2, k1, 10 * 10 * ...)`` whole 10x10 blocks."""
  k2, k1 = x.shape[0] // BLOCK, x.shape[1] // BLOCK
  if k1 == 0 or k2 == 0:
    raise ValueError(f'UIQM needs at least {BLOCK}x{BLOCK} pixels, got '
                     f'{x.shape[:2]}.')
  x = x[:k2 * BLOCK, :k1 * BLOCK]
  x = x.reshape(k2, BLOCK, k1, BLOCK, -1).transpose(0, 2, 1, 3, 4)
  return x.reshape(k2, k1, -1)


def eme(x: np.ndarray) -> float:
  """Enhancement measure of a 2-D array over 10x10 blocks (see module doc)."""
  blk = _blocks(x[..., None])
  hi, lo = blk.max(axis=-1), blk.min(axis=-1)
  ok = (lo != 0) & (hi != 0)
  with np.errstate(divide='ignore', invalid='ignore'):
    terms = np.where(ok, np.log(np.where(ok, hi / np.where(ok, lo, 1.0), 1.0)),
                     0.0)
  return 2.0 / (blk.shape[0] * blk.shape[1]) * float(np.sum(terms))


def _sobel_magnitude(c: np.ndarray) -> np.ndarray:
  mag = np.hypot(scipy.ndimage.sobel(c, 0), scipy.ndimage.sobel(c, 1))
  peak = np.max(mag)
  # A flat channel has no edges: its edge map is 0 and its EME 0. (The
  # reference divides 0 by 0 here and returns NaN for the whole UIQM.)
  return mag * (255.0 / peak) if peak > 0 else mag


def uism(x: np.ndarray) -> float:
  """Sharpness of a ``(H, W, 3)`` float image on [0, 255]."""
  total = 0.0
  for i, w in enumerate(UISM_WEIGHTS):
    c = x[..., i]
    total += w * eme(_sobel_magnitude(c) * c)
  return total


def uiconm(x: np.ndarray) -> float:
  """Contrast of a ``(H, W, 3)`` float image on [0, 255] (see module doc)."""
  blk = _blocks(x)
  hi, lo = blk.max(axis=-1), blk.min(axis=-1)
  top, bot = hi - lo, hi + lo
  ok = (top != 0) & (bot != 0) & np.isfinite(top) & np.isfinite(bot)
  ratio = np.where(ok, top / np.where(ok, bot, 1.0), 1.0)
  terms = np.where(ok, ratio * np.log(ratio), 0.0)
  return -1.0 / (blk.shape[0] * blk.shape[1]) * float(np.sum(terms))


def uiqm_components(img: Any) -> dict[str, float]:
  """``{'uicm', 'uism', 'uiconm', 'uiqm'}`` of an RGB image."""
  x = _common.to_255(_common.check_image(img))
  parts = {'uicm': uicm(x), 'uism': uism(x), 'uiconm': uiconm(x)}
  c1, c2, c3 = UIQM_COEFFS
  parts['uiqm'] = c1 * parts['uicm'] + c2 * parts['uism'] + c3 * parts['uiconm']
  return parts


def uiqm(img: Any) -> float:
  """UIQM of an RGB image (RestoRect variant; higher = better).

  Args:
    img: ``(H, W, 3)`` RGB, uint8 (0..255) or float (0..1, scaled by 255).

  Returns:
    The score (typically 1 .. 4 for natural images).
  """
  return uiqm_components(img)['uiqm']
