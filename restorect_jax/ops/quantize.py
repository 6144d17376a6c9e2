"""uint8 quantisation and uint8 -> float32, as the references do them.

* :func:`to_uint8`: a [0, 1] float image: clip to [0, 1], ``x * 255`` in the
  input's precision, then round half to even (BasicSR ``tensor2img``) or
  truncate (RestoRect's test script, torchvision ``ToPILImage``).
* :func:`quantize_255`: values already on the [0, 255] scale: clip to
  [0, 255], then round half to even, truncate, or round half up
  (``floor(x + 0.5)`` in float64, an approximation of OpenCV's saturating
  casts).
* :func:`uint8_to_float32`: ``x * float32(1 / 255)``, the one expression every
  reader uses, so a file read anywhere gives bit-identical model inputs.

NaN becomes 0 everywhere. Round-then-clip and clip-then-round give the same
uint8 for every finite value, so the order the references use does not
matter.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Mode = Literal['round', 'truncate']
Mode255 = Literal['round', 'truncate', 'half_up']
_MODES_255 = ('round', 'truncate', 'half_up')


def uint8_to_float32(img: np.ndarray) -> np.ndarray:
  """uint8 -> float32 in [0, 1] as ``x * float32(1 / 255)``."""
  return np.asarray(img).astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(img: np.ndarray, mode: Mode = 'round') -> np.ndarray:
  """Quantises a [0, 1] float image to uint8 after clipping to [0, 1].

  ``x * 255`` is computed in the input's float precision (float32 stays
  float32, as in the references), so edge cases such as ``k + 0.5`` land
  where the reference lands. ``'round'`` uses NumPy's round-half-to-even like
  ``tensor2img``'s ``np.round``. NaNs become 0. Non-float input is taken as
  float64; uint8 input is returned as a copy unchanged.

  Args:
    img: Image of any shape, floats nominally in [0, 1] (or uint8).
    mode: ``'round'`` (BasicSR ``tensor2img``) or ``'truncate'`` (the
      RestoRect test script's ``(x * 255).astype(np.uint8)``).

  Returns:
    A uint8 array of the same shape.
  """
  if mode not in ('round', 'truncate'):
    raise ValueError(f"mode must be 'round' or 'truncate', got {mode!r}.")
  x = np.asarray(img)
  if x.dtype == np.uint8:
    return x.copy()
  if not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)
  x = x * x.dtype.type(255.0)
  if mode == 'round':
    x = np.round(x)
  # Values are in [0, 255] after the clip, so the cast truncates toward zero.
  return x.astype(np.uint8)


def quantize_255(x: np.ndarray, mode: Mode255 = 'round') -> np.ndarray:
  """Quantises values on the [0, 255] scale to uint8.

  Args:
    x: float array on the [0, 255] scale (any shape; values outside are
      clipped).
    mode: ``'round'`` (half to even, ``np.round`` in the input's precision),
      ``'truncate'`` (``astype(uint8)`` after the clip) or ``'half_up'``
      (``floor(x + 0.5)`` computed in float64).

  Returns:
    A uint8 array of the same shape.
  """
  if mode not in _MODES_255:
    raise ValueError(f'mode must be one of {_MODES_255}, got {mode!r}.')
  x = np.nan_to_num(np.asarray(x), nan=0.0)
  if mode == 'half_up':
    x = np.floor(x.astype(np.float64) + 0.5)
  elif mode == 'round':
    x = np.round(x)
  return np.clip(x, 0, 255).astype(np.uint8)
