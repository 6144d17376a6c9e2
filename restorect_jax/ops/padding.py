"""Padding to a size or a multiple, and cropping back.

Two mirror rules, as the references use them:

* ``reflect`` (numpy / torch ``'reflect'``, OpenCV ``BORDER_REFLECT_101``):
  the edge pixel is not repeated (``d c b | a b c d | c b a``). Used to pad
  model inputs to a multiple of the down-sampling factor
  (:func:`pad_to`, :func:`pad_to_multiple`). Works on numpy and JAX arrays.
* ``symmetric`` (numpy ``'symmetric'``, OpenCV ``BORDER_REFLECT``): the edge
  pixel is repeated (``c b a | a b c d | d c b``). Used by the training
  pipeline to bring a small sample up to the patch size
  (:func:`symmetric_pad_to_min`).

Padding is always on the bottom/right, so :func:`crop_to` (keep the top-left
window) undoes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def array_module(x: Any) -> Any:
  """``jax.numpy`` for JAX arrays (and tracers), ``numpy`` otherwise."""
  return jnp if isinstance(x, jax.Array) else np


def spatial_axes(ndim: int) -> tuple[int, int]:
  """The (H, W) axes of an (H, W), (H, W, C) or (B, H, W, C) array."""
  if ndim in (2, 3):
    return 0, 1
  if ndim == 4:
    return 1, 2
  raise ValueError(
      f'Expected (H, W), (H, W, C) or (B, H, W, C), got {ndim} dimensions.'
  )


def round_up(n: int, multiple: int) -> int:
  """Smallest multiple of ``multiple`` that is >= ``n``."""
  if multiple < 1:
    raise ValueError(f'multiple must be >= 1, got {multiple}.')
  return -(-int(n) // multiple) * multiple


def reflect_indices(n: int, size: int) -> np.ndarray:
  """Source index of each of ``n`` positions of a reflect-padded axis.

  Position ``i < size`` maps to itself; beyond, the axis is mirrored about
  its last pixel without repeating it (``size - 2``, ``size - 3``, ...) and
  the mirroring continues back and forth when ``n > 2 * size - 1``. A
  1-pixel axis maps everything to 0. This equals
  ``np.pad(..., mode='reflect')`` on the bottom/right for every pad width.

  Args:
    n: padded length (>= 1).
    size: original length (>= 1).

  Returns:
    int64 array of shape (n,) with values in [0, size).
  """
  if size < 1 or n < 1:
    raise ValueError(f'Need n >= 1 and size >= 1, got {n}, {size}.')
  i = np.arange(n)
  if size == 1:
    return np.zeros_like(i)
  period = 2 * (size - 1)
  i = np.mod(i, period)
  return np.where(i >= size, period - i, i)


def refill_reflect(x: jax.Array, valid: jax.Array) -> jax.Array:
  """Rewrites the padded border of each image from its valid region.

  ``x[b]`` holds an image of ``valid[b] = (h, w)`` pixels in its top-left
  corner; every row ``>= h`` and column ``>= w`` is replaced by the
  reflection :func:`pad_to` would put there (:func:`reflect_indices` with a
  traced size), so ``refill_reflect(x, v)[b]`` equals
  ``pad_to(crop_to(x[b], v[b]), x.shape[1:3])``. The sizes are traced: one
  compiled program serves every (h, w) of a shape. A sampler that calls
  this before every network evaluation reproduces a reference that pads
  and crops at every call, while its state keeps one padded shape.

  Args:
    x: (B, H, W, C) array.
    valid: (B, 2) int array of the valid (h, w), each in [1, H] / [1, W].

  Returns:
    An array like ``x``.
  """

  def indices(n, size):
    i = jnp.arange(size)
    period = jnp.maximum(2 * (n - 1), 1)
    m = jnp.mod(i, period)
    return jnp.where(n == 1, 0, jnp.where(m >= n, period - m, m))

  def one(img, hw):
    img = jnp.take(img, indices(hw[0], img.shape[0]), axis=0)
    return jnp.take(img, indices(hw[1], img.shape[1]), axis=1)

  return jax.vmap(one)(x, jnp.asarray(valid, jnp.int32))


def pad_to(image: Any, shape: Sequence[int]) -> Any:
  """Reflect-pads the bottom/right of an image to a larger spatial shape.

  Works on (H, W), (H, W, C) and (B, H, W, C) numpy or JAX arrays (the result
  has the input's kind; under ``jax.jit`` the shapes must be static). The
  input itself is returned when it already has ``shape``. See
  :func:`reflect_indices` for the padding rule; :func:`crop_to` inverts it.

  Args:
    image: the array.
    shape: target (H_pad, W_pad), each >= the current side.

  Returns:
    The padded array.
  """
  ay, ax = spatial_axes(image.ndim)
  h, w = image.shape[ay], image.shape[ax]
  hp, wp = (int(s) for s in shape)
  if hp < h or wp < w:
    raise ValueError(
        f'pad_to: target {hp}x{wp} is smaller than the image {h}x{w}; use '
        'crop_to to shrink.'
    )
  xp = array_module(image)
  if hp > h:
    image = xp.take(image, reflect_indices(hp, h), axis=ay)
  if wp > w:
    image = xp.take(image, reflect_indices(wp, w), axis=ax)
  return image


def pad_to_multiple(image: Any, multiple: int) -> tuple[Any, tuple[int, int]]:
  """Reflect-pads the bottom/right so H and W are multiples of ``multiple``.

  The padding of the references' test scripts (``F.pad(x, (0, pw, 0, ph),
  'reflect')``); :func:`pad_to` with the sides rounded up.

  Args:
    image: (H, W), (H, W, C) or (B, H, W, C) numpy or JAX array.
    multiple: the required divisor of the sides (>= 1).

  Returns:
    The padded array (the input itself when no padding is needed) and the
    original (H, W), the window :func:`crop_to` keeps.
  """
  ay, ax = spatial_axes(image.ndim)
  h, w = int(image.shape[ay]), int(image.shape[ax])
  return pad_to(image, (round_up(h, multiple), round_up(w, multiple))), (h, w)


def crop_to(image: Any, shape: Sequence[int]) -> Any:
  """Keeps the top-left (H, W) of an (H', W'[, C]) or (B, H', W', C) array."""
  ay, _ = spatial_axes(image.ndim)
  h, w = (int(s) for s in shape)
  index = (slice(None),) * ay + (slice(0, h), slice(0, w))
  return image[index]


def symmetric_pad_to_min(img: np.ndarray, min_size: int) -> np.ndarray:
  """Pads the bottom/right of an (H, W, ...) image so both sides >= min_size.

  numpy ``'symmetric'`` padding (the edge pixel repeated, OpenCV
  ``BORDER_REFLECT``, what BasicSR's paired datasets pad small training
  samples with). A pad wider than the image is handled by numpy's repeated
  mirroring.

  Args:
    img: array with the spatial axes first.
    min_size: minimum height and width.

  Returns:
    The padded image (the input itself when no padding is needed).
  """
  h, w = img.shape[:2]
  ph, pw = max(0, min_size - h), max(0, min_size - w)
  if not ph and not pw:
    return img
  pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
  return np.pad(img, pad, mode='symmetric')
