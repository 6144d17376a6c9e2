"""Model-agnostic inference helpers: padding, shape buckets, tiles, ensembles.

Everything here takes a ``predict`` callable mapping a float32 batch
``(B, h, w, C)`` to ``(B, h, w, C_out)`` (a jitted model, a sampler, ...) and
knows nothing about the model:

* Padding — :func:`pad_to` reflect-pads on the bottom/right (numpy/torch
  ``'reflect'``: the edge pixel is not repeated; where the pad is as large as
  the image, the reflection repeats, and a 1-pixel side is repeated as is),
  :func:`crop_to` undoes it (both from :mod:`restorect_jax.ops.padding`),
  :func:`with_padding` wraps a predictor so it accepts any size.
* Shape buckets — :func:`bucket_shape` rounds each side up to one of a few
  sizes per octave, so a folder of mixed sizes compiles a handful of programs.
* Tiling — :func:`restore_tiled` runs a predictor on overlapping tiles of one
  image and blends them with :func:`blend_weights`; every tile has the same
  shape (one compilation) and host memory stays at the image plus the output
  plus one batch of tiles. :func:`auto_tile` picks a tile above a pixel
  budget.
* Self-ensemble — :func:`ensemble_x8` averages the predictions of the 8
  dihedral transforms (rotations and flips, :mod:`restorect_jax.ops.dihedral`),
  each mapped back.

Padding and buckets change what a model with global operations sees (e.g.
channel attention over all pixels, global pooling), so a bucketed or tiled
output is close to, not equal to, the output at the image's own size padded
to a multiple of 8 (what the references do); only local operations commute
with them exactly. Use ``bucket=False`` / no tiling for reference parity.

Example::

  predict = jax.jit(lambda x: model.apply(params, x))
  img = image_io.read_image('photo.jpg')                    # (H, W, 3)
  tile = tiling.auto_tile(*img.shape[:2], max_pixels=2**21, overlap=32)
  if tile:
    out = tiling.restore_tiled(predict, img, tile=tile, overlap=32)
  else:
    out = tiling.with_padding(predict)(img[None])[0]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np

from restorect_jax.ops import dihedral as dihedral_lib
from restorect_jax.ops import padding

Predictor = Callable[[Any], Any]
Window = Literal['linear', 'uniform']

# The padding primitives, under the names the inference code uses.
round_up = padding.round_up
reflect_indices = padding.reflect_indices
pad_to = padding.pad_to
crop_to = padding.crop_to


# ----------------------------------------------------------------------------
# Shape buckets.
# ----------------------------------------------------------------------------


def bucket_side(
    n: int, *, multiple: int = 8, min_side: int = 64, per_octave: int = 4
) -> int:
  """Rounds one side up to its bucket.

  With ``per_octave = k`` the buckets are ``min_side`` and, in each octave
  ``(b, 2b]`` with ``b = min_side * 2**j``, the ``k`` sizes
  ``b * (1 + i / k)`` for ``i = 1..k``, each rounded up to ``multiple``. For
  the defaults that is 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
  448, 512, 640, ..., 2048, 2560, 3072, 3584, 4096, ...: four shapes per
  doubling, and a side grows by less than ``n / k + multiple`` (at most ~25 %
  with the defaults). ``per_octave=1`` gives ``min_side`` times powers of
  two; ``per_octave=0`` disables bucketing (round up to ``multiple`` only).

  Args:
    n: side length (>= 1).
    multiple: every bucket is a multiple of this (the model's down-sampling
      factor).
    min_side: the smallest bucket (>= 1).
    per_octave: buckets per doubling of the side; 0 for none.

  Returns:
    The bucket side, >= ``n`` and a multiple of ``multiple``.
  """
  n = int(n)
  if n < 1 or min_side < 1 or per_octave < 0:
    raise ValueError(
        f'Need n >= 1, min_side >= 1, per_octave >= 0; got {n}, {min_side}, '
        f'{per_octave}.'
    )
  if per_octave == 0:
    return round_up(n, multiple)
  if n <= min_side:
    return round_up(min_side, multiple)
  base = min_side
  while 2 * base < n:
    base *= 2
  # base < n <= 2 * base: the i-th of per_octave steps of base / per_octave.
  i = -(-(n - base) * per_octave // base)
  return round_up(base + -(-i * base // per_octave), multiple)


def bucket_shape(
    h: int,
    w: int,
    *,
    multiple: int = 8,
    min_side: int = 64,
    per_octave: int = 4,
) -> tuple[int, int]:
  """Padded (H_pad, W_pad) of an h x w image: each side to its bucket.

  Sides are bucketed independently (see :func:`bucket_side`), so the bucket
  of a transposed image is the transposed bucket: the 8-fold self-ensemble
  of a non-square image uses exactly two shapes.
  """
  kw = dict(multiple=multiple, min_side=min_side, per_octave=per_octave)
  return bucket_side(h, **kw), bucket_side(w, **kw)


def with_padding(
    predict: Predictor,
    *,
    multiple: int = 8,
    bucket: bool = True,
    min_side: int = 64,
    per_octave: int = 4,
    pass_valid: bool = False,
) -> Predictor:
  """Wraps a predictor so it takes (B, h, w, C) batches of any h, w.

  The wrapped function reflect-pads the batch (:func:`pad_to`) to
  :func:`bucket_shape` (``bucket=True``) or just to the next multiple of
  ``multiple`` (``bucket=False``, what the reference test scripts do), calls
  ``predict`` and crops the result back to (h, w).

  Args:
    predict: maps (B, H_pad, W_pad, C) to (B, H_pad, W_pad, C_out).
    multiple: required divisor of the padded sides.
    bucket: pad to shape buckets (few compilations) instead of the smallest
      multiple (parity with the references).
    min_side: see :func:`bucket_side`.
    per_octave: see :func:`bucket_side`.
    pass_valid: call ``predict(padded, valid)`` with ``valid`` the (B, 2)
      int32 array of the image's (h, w) in each padded item (a predictor
      that re-reflects the padding at every step needs it).

  Returns:
    A function (B, h, w, C) → (B, h, w, C_out).
  """

  def padded_predict(batch: Any) -> Any:
    if batch.ndim != 4:
      raise ValueError(f'Expected (B, H, W, C), got shape {batch.shape}.')
    h, w = batch.shape[1:3]
    if bucket:
      shape = bucket_shape(
          h, w, multiple=multiple, min_side=min_side, per_octave=per_octave
      )
    else:
      shape = round_up(h, multiple), round_up(w, multiple)
    padded = pad_to(batch, shape)
    if pass_valid:
      valid = np.tile(np.int32([[h, w]]), (batch.shape[0], 1))
      return crop_to(predict(padded, valid), (h, w))
    return crop_to(predict(padded), (h, w))

  return padded_predict


# ----------------------------------------------------------------------------
# Tiles.
# ----------------------------------------------------------------------------


def _check_tiling_args(tile: int, overlap: int) -> None:
  if tile < 1:
    raise ValueError(f'tile must be >= 1, got {tile}.')
  if not 0 <= overlap < tile:
    raise ValueError(f'Need 0 <= overlap < tile, got {overlap}, {tile}.')


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
  """Start offsets of overlapping tiles covering ``[0, size)``.

  Tiles of length ``min(tile, size)`` start every ``tile - overlap`` pixels;
  the last one is moved back to end flush with ``size`` (so it may overlap
  its neighbour by more than ``overlap``). Every tile has the same length.

  Args:
    size: axis length (>= 1).
    tile: tile length (>= 1).
    overlap: minimum overlap of neighbours, ``0 <= overlap < tile``.

  Returns:
    Increasing start offsets, the first 0 and the last ``size - tile`` (or
    just ``[0]`` when ``size <= tile``).
  """
  _check_tiling_args(tile, overlap)
  if size < 1:
    raise ValueError(f'size must be >= 1, got {size}.')
  if size <= tile:
    return [0]
  return list(range(0, size - tile, tile - overlap)) + [size - tile]


@dataclasses.dataclass(frozen=True)
class TilePlan:
  """Tiles of an (height, width) area: the product grid ``ys`` x ``xs``.

  Attributes:
    height: tiled height.
    width: tiled width.
    tile_h: height of every tile (``min(tile, height)``).
    tile_w: width of every tile (``min(tile, width)``).
    ys: row offsets (:func:`tile_starts`).
    xs: column offsets.
  """

  height: int
  width: int
  tile_h: int
  tile_w: int
  ys: tuple[int, ...]
  xs: tuple[int, ...]

  @property
  def num_tiles(self) -> int:
    return len(self.ys) * len(self.xs)

  @property
  def boxes(self) -> list[tuple[int, int]]:
    """(y, x) top-left corners, row by row."""
    return [(y, x) for y in self.ys for x in self.xs]


def plan_tiles(h: int, w: int, tile: int, overlap: int) -> TilePlan:
  """Square ``tile`` tiles (clipped to the image) covering an h x w area."""
  return TilePlan(
      height=h,
      width=w,
      tile_h=min(tile, h),
      tile_w=min(tile, w),
      ys=tuple(tile_starts(h, tile, overlap)),
      xs=tuple(tile_starts(w, tile, overlap)),
  )


def _check_margin(overlap: int, margin: int) -> None:
  if margin < 0 or (margin and 2 * margin >= overlap):
    raise ValueError(
        f'Need 0 <= 2 * margin < overlap (or margin = 0), got margin '
        f'{margin}, overlap {overlap}.'
    )


def window_1d(
    n: int,
    overlap: int,
    *,
    margin: int = 0,
    lo: bool = True,
    hi: bool = True,
    window: Window = 'linear',
) -> np.ndarray:
  """1-D blending weights of a tile of length ``n``; see :func:`blend_weights`.

  On an interior side (``lo``: the start, ``hi``: the end) the first
  ``margin`` pixels get weight 0 and, for ``window='linear'``, the next
  ``overlap - 2 * margin`` pixels ramp up as ``1 / (r + 1), 2 / (r + 1),
  ..., r / (r + 1)`` with ``r = overlap - 2 * margin``; the rest is 1. Two
  neighbours overlapping by exactly ``overlap`` pixels then have weights
  summing to 1 across the overlap. A side on the image border stays 1.

  Returns:
    float32 array of shape (n,).
  """
  _check_margin(overlap, margin)
  if window not in ('linear', 'uniform'):
    raise ValueError(f"window must be 'linear' or 'uniform', got {window!r}.")
  d = np.arange(n, dtype=np.float64)
  w = np.ones(n, np.float64)
  r = overlap - 2 * margin
  for interior, dist in ((lo, d), (hi, n - 1 - d)):
    if not interior:
      continue
    if window == 'linear' and r > 0:
      ramp = np.clip((dist - margin + 1) / (r + 1), 0.0, 1.0)
    else:
      ramp = (dist >= margin).astype(np.float64)
    w = np.minimum(w, ramp)
  return w.astype(np.float32)


def blend_weights(
    tile_h: int,
    tile_w: int,
    overlap: int,
    *,
    margin: int = 0,
    window: Window = 'linear',
    interior: tuple[bool, bool, bool, bool] = (True, True, True, True),
) -> np.ndarray:
  """Separable weight window of a tile, ``w_y[:, None] * w_x[None, :]``.

  Tiled outputs are blended as ``sum_t w_t * pred_t / sum_t w_t``, so for a
  pointwise predictor the blend equals the untiled prediction whatever the
  (non-negative) weights, up to float rounding. The weights matter for a
  predictor with spatial context, whose output is wrong near a tile edge
  that is not an image edge: ``window='linear'`` ramps the weight down
  towards such edges over the overlap (smooth seams) and ``margin`` zeroes
  the ``margin`` pixels next to them. With ``margin >= r`` for a predictor
  whose receptive field reaches ``r`` pixels, the blend is exact (every
  pixel is taken only from tiles where its whole receptive field is real
  image). ``window='uniform'``, ``margin=0`` is the plain average of
  Restormer's tiled test. With ``margin=0`` the weights are strictly
  positive.

  Args:
    tile_h: tile height.
    tile_w: tile width.
    overlap: overlap between neighbouring tiles (the ramp length).
    margin: pixels zeroed next to interior edges, ``2 * margin < overlap``.
    window: ``'linear'`` ramps or ``'uniform'``.
    interior: whether the (top, bottom, left, right) side of the tile lies
      inside the image (ramped) or on its border (weight 1).

  Returns:
    float32 array (tile_h, tile_w), values in [0, 1].
  """
  top, bottom, left, right = interior
  kw = dict(margin=margin, window=window)
  wy = window_1d(tile_h, overlap, lo=top, hi=bottom, **kw)
  wx = window_1d(tile_w, overlap, lo=left, hi=right, **kw)
  return wy[:, None] * wx[None, :]


def needs_tiling(h: int, w: int, max_pixels: int) -> bool:
  """True when an h x w image has more than ``max_pixels`` pixels."""
  return int(h) * int(w) > int(max_pixels)


def auto_tile(
    h: int, w: int, *, max_pixels: int, overlap: int = 0, multiple: int = 8
) -> int | None:
  """A tile side for an image above a pixel budget, or None if it fits.

  The tile is the largest multiple of ``multiple`` whose square fits in
  ``max_pixels`` (the budget of one predictor call with batch 1), so the
  peak memory of the model does not depend on the image size.

  Args:
    h: image height.
    w: image width.
    max_pixels: pixel budget of one predictor call.
    overlap: the overlap that will be used; the tile must exceed it (0
      skips the check; :func:`restore_tiled` checks again).
    multiple: the tile is a multiple of this.

  Returns:
    The tile side, or None when :func:`needs_tiling` is False.

  Raises:
    ValueError: the budget is too small for a tile larger than ``overlap``.
  """
  if not needs_tiling(h, w, max_pixels):
    return None
  tile = math.isqrt(int(max_pixels)) // multiple * multiple
  if tile <= overlap or tile < multiple:
    raise ValueError(
        f'max_pixels={max_pixels} allows {tile}x{tile} tiles, which must '
        f'be larger than the overlap {overlap} and at least {multiple}.'
    )
  return tile


def restore_tiled(
    predict: Predictor,
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    multiple: int = 8,
    batch: int = 1,
    margin: int | None = None,
    window: Window = 'linear',
    progress: Callable[[int, int], None] | None = None,
    pass_valid: bool = False,
) -> np.ndarray:
  """Runs ``predict`` on overlapping tiles of one image and blends them.

  The image is treated as reflect-padded to a multiple of ``multiple`` (as
  the untiled model would pad it; no padded copy is made) and split by
  :func:`plan_tiles` into ``tile`` x ``tile`` windows of that padded area
  (clipped to it when smaller), the last row/column flush with its border.
  All tiles therefore have one shape and ``predict`` compiles once; the last
  batch is filled up by repeating its last tile. Outputs are accumulated
  with :func:`blend_weights` in a float32 host buffer of the image size and
  normalised by the (separable) weight sums. Host memory is the input, the
  output and about two batches of tiles; the predictor of the next batch is
  dispatched before the previous result is accumulated, so an asynchronous
  (JAX) predictor overlaps with the host work.

  For a pointwise predictor the result equals the untiled
  ``with_padding(predict, bucket=False)`` result up to float rounding; for a
  predictor with a receptive field of ``r <= margin`` pixels as well. Models
  with global operations differ by more (see the module docstring).

  Args:
    predict: maps float32 (batch, th, tw, C) to (batch, th, tw, C_out) with
      ``th, tw`` multiples of ``multiple``; may return a JAX array.
    image: (H, W, C) float array (tiles are cast to float32).
    tile: tile side, a multiple of ``multiple``.
    overlap: overlap of neighbouring tiles, ``0 <= overlap < tile``.
    multiple: the model's size divisor.
    batch: tiles per ``predict`` call.
    margin: pixels discarded next to interior tile edges (see
      :func:`blend_weights`); None means ``overlap // 4`` (rounded down to
      keep ``2 * margin < overlap``).
    window: ``'linear'`` or ``'uniform'`` (see :func:`blend_weights`).
    progress: called as ``progress(done, total)`` with the numbers of
      tiles blended and in all, after each batch's result is blended (so
      ``done`` reaches ``total`` once, at the end).
    pass_valid: call ``predict(tiles, valid)`` with ``valid`` the (batch,
      2) int32 array of each tile's (h, w) that lies inside the image (the
      rest of a border tile is reflect padding): a predictor that
      re-reflects the padding at every step then treats the image's
      bottom/right border as the untiled run does.

  Returns:
    float32 (H, W, C_out) numpy array.
  """
  image = np.asarray(image)
  if image.ndim != 3:
    raise ValueError(f'Expected an (H, W, C) image, got shape {image.shape}.')
  _check_tiling_args(tile, overlap)
  if tile % multiple:
    raise ValueError(
        f'tile {tile} must be a multiple of {multiple} (e.g. '
        f'{round_up(tile, multiple)}).'
    )
  if batch < 1:
    raise ValueError(f'batch must be >= 1, got {batch}.')
  if margin is None:
    margin = overlap // 4
    if margin and 2 * margin >= overlap:
      margin -= 1
  _check_margin(overlap, margin)
  h, w, c = image.shape
  plan = plan_tiles(round_up(h, multiple), round_up(w, multiple), tile,
                    overlap)
  th, tw = plan.tile_h, plan.tile_w
  rows = reflect_indices(plan.height, h)
  cols = reflect_indices(plan.width, w)
  kw = dict(margin=margin, window=window)
  wy = {y: window_1d(th, overlap, lo=y > 0, hi=y + th < plan.height, **kw)
        for y in plan.ys}
  wx = {x: window_1d(tw, overlap, lo=x > 0, hi=x + tw < plan.width, **kw)
        for x in plan.xs}
  sum_y = np.zeros(h, np.float64)
  for y, wts in wy.items():
    sum_y[y:y + th] += wts[:h - y]
  sum_x = np.zeros(w, np.float64)
  for x, wts in wx.items():
    sum_x[x:x + tw] += wts[:w - x]

  out = None

  def accumulate(result: Any, boxes: list[tuple[int, int]],
                 start: int) -> None:
    nonlocal out
    res = np.asarray(result)
    if res.ndim != 4 or res.shape[:3] != (batch, th, tw):
      raise ValueError(
          f'predict returned shape {res.shape} for input shape '
          f'{(batch, th, tw, c)}; expected (batch, th, tw, C_out).'
      )
    if out is None:
      out = np.zeros((h, w, res.shape[-1]), np.float32)
    for j, (y, x) in enumerate(boxes):
      hy, hx = min(th, h - y), min(tw, w - x)
      wts = wy[y][:hy, None, None] * wx[x][None, :hx, None]
      out[y:y + hy, x:x + hx] += res[j, :hy, :hx] * wts
    if progress is not None:
      progress(start + len(boxes), len(plan.boxes))

  boxes = plan.boxes
  pending = None
  for start in range(0, len(boxes), batch):
    chunk = boxes[start:start + batch]
    # A fresh buffer per call: an asynchronous predictor may still read it.
    tiles = np.empty((batch, th, tw, c), np.float32)
    for j, (y, x) in enumerate(chunk):
      if y + th <= h and x + tw <= w:
        tiles[j] = image[y:y + th, x:x + tw]
      else:
        tiles[j] = image[np.ix_(rows[y:y + th], cols[x:x + tw])]
    tiles[len(chunk):] = tiles[len(chunk) - 1]
    if pass_valid:
      # Each tile's part inside the image; padding items repeat the last.
      valid = [(min(th, h - y), min(tw, w - x)) for y, x in chunk]
      valid += valid[-1:] * (batch - len(chunk))
      result = predict(tiles, np.int32(valid))
    else:
      result = predict(tiles)
    if pending is not None:
      accumulate(*pending)
    pending = (result, chunk, start)
  accumulate(*pending)
  # Every pixel has a positive weight sum (neighbours overlap by more than
  # 2 * margin); divide in row blocks to keep the temporary small.
  for r in range(0, h, 64):
    norm = sum_y[r:r + 64, None] * sum_x[None, :]
    out[r:r + 64] /= norm[..., None]
  return out


# ----------------------------------------------------------------------------
# 8-fold self-ensemble.
# ----------------------------------------------------------------------------


def dihedral(x: Any, k: int) -> Any:
  """Transform ``k`` (0..7) of the (H, W) axes of a (B, H, W, C) batch.

  :func:`restorect_jax.ops.dihedral.dihedral` on axes (1, 2): the numbering
  of :func:`input_pipeline.dihedral` (the reference's augmentation modes).
  Odd ``k // 2`` swaps H and W.
  """
  return dihedral_lib.dihedral(x, k, axes=(1, 2))


def inverse_dihedral(y: Any, k: int) -> Any:
  """Undoes :func:`dihedral`: ``inverse_dihedral(dihedral(x, k), k)`` is x."""
  return dihedral_lib.inverse_dihedral(y, k, axes=(1, 2))


def ensemble_x8(
    predict: Predictor, image_batch: Any, *, stack: bool = False
) -> Any:
  """Self-ensemble: mean over the 8 dihedral transforms of the prediction.

  ``mean_k inverse_k(predict(transform_k(x)))``. Transforms 2, 3, 6 and 7
  swap H and W, so a non-square batch reaches ``predict`` in two shapes
  (wrap ``predict`` with :func:`with_padding` if it needs a size multiple;
  with buckets that is two compilations per bucket). The sum is pairwise in
  the prediction's dtype and then scaled by 1/8, so 8 identical predictions
  average to exactly that prediction (``predict = identity`` returns the
  input bit for bit). A numpy batch gives a numpy result (each prediction is
  copied to the host); a JAX batch stays on device and the whole function
  can be jitted.

  Args:
    predict: maps (B, h, w, C) to (B, h, w, C_out) for (h, w) = (H, W) and
      (W, H).
    image_batch: (B, H, W, C).
    stack: call ``predict`` once per shape with the transforms concatenated
      on the batch axis (batch 8B for a square input, 4B twice otherwise)
      instead of 8 calls of batch B: fewer calls, more memory.

  Returns:
    (B, H, W, C_out), the average.
  """
  x = image_batch
  if x.ndim != 4:
    raise ValueError(f'Expected (B, H, W, C), got shape {x.shape}.')
  xp = padding.array_module(x)
  to_out = (lambda a: a) if xp is jnp else np.asarray
  prep = (lambda a: a) if xp is jnp else np.ascontiguousarray
  b, h, w = x.shape[:3]
  if stack:
    groups = [list(range(8))] if h == w else [[0, 1, 4, 5], [2, 3, 6, 7]]
  else:
    groups = [[k] for k in range(8)]
  # Pairwise sum, e.g. ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)),
  # holding at most 3 partial sums plus one prediction.
  partial: list[tuple[int, Any]] = []
  for group in groups:
    inp = xp.concatenate([dihedral(x, k) for k in group], axis=0)
    out = to_out(predict(prep(inp)))
    if out.ndim != 4 or out.shape[0] != b * len(group):
      raise ValueError(
          f'predict returned shape {out.shape} for input shape {inp.shape}.'
      )
    for i, k in enumerate(group):
      level, total = 0, inverse_dihedral(out[i * b:(i + 1) * b], k)
      while partial and partial[-1][0] == level:
        total = partial.pop()[1] + total
        level += 1
      partial.append((level, total))
    del out
  (_, total), = partial
  return total * total.dtype.type(0.125)
