"""Normalised Gaussian kernels (SSIM windows, MSCN windows).

The taps sit at ``r = i - (size - 1) / 2`` and are ``exp(-r^2 / (2
sigma^2))`` computed in float64, then divided by their sum. The users:

* SSIM, 11 taps, sigma 1.5: BasicSR / MATLAB SSIM
  (:mod:`restorect_jax.evaluation.metrics`, float64, within 1e-16 of
  ``cv2.getGaussianKernel(11, 1.5)``) and IR-Flow's SSIM loss (cast to
  float32 *before* the normalisation, as its PyTorch code does).
* BRISQUE and NIQE MSCN, 7 x 7, sigma 7/6 (MATLAB ``fspecial('gaussian',
  7, 7/6)``): :func:`gaussian_window`, normalised over the 2-D window (not
  the outer product of normalised taps, which differs in the last bit).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _offsets(size: int) -> np.ndarray:
  if size < 1:
    raise ValueError(f'size must be >= 1, got {size}.')
  return np.arange(size, dtype=np.float64) - (size - 1) / 2.0


def gaussian_taps(size: int, sigma: float,
                  dtype: Any = np.float64) -> np.ndarray:
  """Normalised 1-D Gaussian of ``size`` taps.

  Args:
    size: number of taps (odd for a centred kernel).
    sigma: standard deviation in taps.
    dtype: the taps are computed in float64, cast to ``dtype`` and then
      divided by their sum in ``dtype``.

  Returns:
    ``(size,)`` array of ``dtype`` summing to 1 (up to rounding).
  """
  r = _offsets(size)
  k = np.exp(-(r ** 2) / (2.0 * sigma ** 2)).astype(dtype)
  return k / k.sum()


def gaussian_window(size: int, sigma: float) -> np.ndarray:
  """Normalised 2-D Gaussian, as MATLAB ``fspecial('gaussian', size, sigma)``.

  Returns:
    ``(size, size)`` float64 array summing to 1.
  """
  r = _offsets(size)
  g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma ** 2))
  return g / g.sum()
