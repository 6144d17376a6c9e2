"""Luma and grey conversions, each in the arithmetic of the code it matches.

The references compute "Y" or "grey" with the same two weight sets but in
different precisions and operation orders, and a metric that rounds the
result afterwards can land on a different integer when the order changes.
So each flavour here keeps its reference's arithmetic:

============================  =========================  ===================
function                      reference                  arithmetic
============================  =========================  ===================
:func:`y_bt601`               BasicSR ``bgr2ycbcr``      float64, unrounded
:func:`y_bt601_basicsr_f32`   BasicSR ``to_y_channel``   float32 / float64
:func:`y_bt601_rounded_u8`    IR-SDE ``rgb2ycbcr``       float64, rounded
:func:`gray_cv2_u8`           cv2 ``RGB2GRAY`` (uint8)   15-bit fixed point
:func:`gray_cv2_f32`          cv2 ``RGB2GRAY`` (float)   float32
:func:`luma_yiq_f32`          piq ``rgb2yiq`` Y          float32
============================  =========================  ===================

Inputs are ``(..., 3)`` RGB. ``swapped=True`` reproduces references that
passed RGB arrays to a BGR function: the R and B weights trade places.
"""

from __future__ import annotations

import numpy as np

# BT.601 "studio swing" luma on [0, 255], in R, G, B order (BasicSR's
# ``bgr2ycbcr`` lists them as B, G, R = 24.966, 128.553, 65.481):
# Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
BT601_Y_RGB = (65.481, 128.553, 24.966)
# BT.601 full-range luma (OpenCV ``RGB2GRAY``, MATLAB ``rgb2gray``, YIQ Y).
GRAY_RGB = (0.299, 0.587, 0.114)
# OpenCV's uint8 ``RGB2GRAY`` (4.x and 5.x): weights in 15-bit fixed point
# (``RY15, GY15, BY15`` = round(w * 2**15), summing to 2**15), rounded by
# adding 2**14. OpenCV 3.x used 14 bits (4899, 9617, 1868), which differs in
# about 0.3 % of the pixels by one level.
_GRAY_FIXED_RGB = np.array([9798, 19235, 3735], np.int64)
_GRAY_SHIFT = 15


def _check3(x: np.ndarray, what: str) -> np.ndarray:
  if x.shape[-1] != 3:
    raise ValueError(f'{what} needs 3 channels last, got shape {x.shape}.')
  return x


def _bt601(swapped: bool) -> np.ndarray:
  w = np.array(BT601_Y_RGB, np.float64)
  return w[::-1] if swapped else w


def y_bt601(img: np.ndarray, swapped: bool = False) -> np.ndarray:
  """BasicSR ``bgr2ycbcr(y_only=True)`` in float64, unrounded.

  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` as ``x @ (w / 255) +
  16``.

  Args:
    img: ``(..., 3)`` RGB image, uint8 or float on the [0, 255] scale.
    swapped: Swap the R and B weights.

  Returns:
    ``(...)`` float64 Y values, nominally in [16, 235].
  """
  x = _check3(np.asarray(img, np.float64), 'y_bt601')
  return x @ (_bt601(swapped) / 255.0) + 16.0


def y_bt601_basicsr_f32(img: np.ndarray, swapped: bool = False) -> np.ndarray:
  """BasicSR ``to_y_channel`` of a [0, 255] image, as its NIQE computes it.

  Divides the float32 image by 255 in float32, takes the dot product with
  float64 weights, adds 16, divides by 255, casts to float32 and multiplies
  by 255 in float32.

  Args:
    img: ``(..., 3)`` RGB on [0, 255] (any real dtype).
    swapped: Swap the R and B weights.

  Returns:
    ``(...)`` float64 holding the float32 result.
  """
  x = _check3(np.asarray(img, np.float32), 'y_bt601_basicsr_f32')
  x = x / np.float32(255.0)
  y = ((x.astype(np.float64) @ _bt601(swapped) + 16.0) / 255.0).astype(
      np.float32)
  return (y * np.float32(255.0)).astype(np.float64)


def y_bt601_rounded_u8(img: np.ndarray, swapped: bool = False) -> np.ndarray:
  """IR-SDE / IR-Flow ``rgb2ycbcr`` / ``bgr2ycbcr(only_y=True)`` on uint8.

  ``round(16 + (w . pixel) / 255)`` in float64 (dot product first), cast to
  uint8.

  Args:
    img: ``(..., 3)`` uint8 RGB.
    swapped: Swap the R and B weights (IR-Flow's ``bgr2ycbcr`` on RGB).

  Returns:
    ``(...)`` uint8 Y.
  """
  x = _check3(np.asarray(img), 'y_bt601_rounded_u8')
  if x.dtype != np.uint8:
    raise ValueError(f'Expected uint8, got {x.dtype}.')
  y = np.dot(x, list(_bt601(swapped))) / 255.0 + 16.0
  return np.round(y).astype(np.uint8)


def gray_cv2_u8(img: np.ndarray) -> np.ndarray:
  """cv2 ``COLOR_RGB2GRAY`` of a uint8 RGB image (fixed point, rounded).

  ``(9798 R + 19235 G + 3735 B + 2**14) >> 15``, OpenCV's integer path
  (equal to ``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)`` of OpenCV 4.x / 5.x,
  with or without IPP); within one level of ``round(0.299 R + 0.587 G +
  0.114 B)``.

  Args:
    img: ``(H, W, 3)`` uint8 RGB.

  Returns:
    ``(H, W)`` uint8 grey.
  """
  x = np.asarray(img)
  if x.dtype != np.uint8 or x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f'Expected (H, W, 3) uint8, got {x.shape} {x.dtype}.')
  acc = x.astype(np.int64) @ _GRAY_FIXED_RGB + (1 << (_GRAY_SHIFT - 1))
  return (acc >> _GRAY_SHIFT).astype(np.uint8)


def gray_cv2_f32(img: np.ndarray, swapped: bool = False) -> np.ndarray:
  """cv2 float ``COLOR_RGB2GRAY``: ``c0 w0 + c1 w1 + c2 w2`` in float32.

  Left to right, two roundings per term. OpenCV 5.1.0 fuses the products
  (``fma(c2, w2, fma(c1, w1, c0 w0))`` without IPP; IPP differs again), so
  about a fifth of the values differ from ``cv2.cvtColor`` by 1-2 ulp; the
  protocols only average this grey, where that is ~1e-7 relative.

  Args:
    img: ``(..., 3)`` RGB (any real dtype, cast to float32).
    swapped: Swap the R and B weights: cv2 ``COLOR_BGR2GRAY`` applied to an
      RGB array (0.114 R + 0.587 G + 0.299 B), as Retinexformer and LLFlow
      do.

  Returns:
    ``(...)`` float32 grey on the input's scale.
  """
  x = _check3(np.asarray(img, np.float32), 'gray_cv2_f32')
  w = [np.float32(v) for v in GRAY_RGB]
  if swapped:
    w = w[::-1]
  return x[..., 0] * w[0] + x[..., 1] * w[1] + x[..., 2] * w[2]


def luma_yiq_f32(img: np.ndarray) -> np.ndarray:
  """Unrounded YIQ luma on [0, 255], computed in float32 as piq does.

  uint8 input is first divided by 255 in float32 (piq gets ``float32(uint8 /
  255)`` tensors), then multiplied by 255 and reduced with float32 weights by
  a matrix product. About one pixel in a thousand sits on a rounding tie, so
  the float32 arithmetic decides how it rounds afterwards.

  Args:
    img: ``(..., 3)`` RGB, uint8 or float on [0, 1].

  Returns:
    ``(...)`` float64 holding the float32 luma.
  """
  x = _check3(np.asarray(img), 'luma_yiq_f32')
  f = np.float32
  if x.dtype == np.uint8:
    x = x.astype(f) / f(255.0)
  x = x.astype(f) * f(255.0)
  return (x @ np.array(GRAY_RGB, f)).astype(np.float64)
