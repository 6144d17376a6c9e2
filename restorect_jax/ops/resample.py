"""Resamplers: OpenCV bilinear and bicubic, MATLAB ``imresize``, and others.

* :func:`resize_bilinear` — ``cv2.resize(img, (w, h),
  interpolation=cv2.INTER_LINEAR)`` on float32 images, **bit-exact** to
  OpenCV 5.1.0 (opencv-python-headless 5.1.0.95, x86-64) in both of its
  code paths (see below).
* :func:`resize_bicubic` — ``cv2.INTER_CUBIC`` (Keys kernel, a = -0.75), a
  port of OpenCV's generic float path, within 2.4e-7 of it.
* :func:`matlab_imresize_matrix` / :func:`matlab_imresize` — MATLAB's
  bicubic ``imresize`` (antialiased when shrinking), as BasicSR's NIQE and
  piq's BRISQUE use it.
* :func:`torch_bilinear_matrix` — PyTorch ``interpolate(mode='bilinear',
  align_corners=False)`` along one axis.
* :func:`area_linear_matrix` / :func:`area_linear_resize` — box (area)
  weights when shrinking, linear when enlarging; the demo set's resize.
* :func:`matlab_box_downsample` — MATLAB ``ssim.m``'s ``f x f`` averaging
  and subsampling.

OpenCV ``INTER_LINEAR`` on float32 has two implementations; the x86-64 pip
wheels bundle Intel IPP and take the first by default. Both are horizontal
pass, then vertical pass, in float32; an output of the input's size is an
exact copy.

``flavour='ipp'`` (``cv2.ipp.useIPP()`` is True, the x86-64 default): Intel
  IPP's linear resize through OpenCV's IPP HAL. Source position ``p = (d +
  0.5) * (in / out) - 0.5`` in float64, index ``floor(p)`` clamped to the
  image (edge pixels replicated), fraction ``f = float32(p - floor(p))``.
  Each pass is the lerp ``a + f (b - a)`` as one fused multiply-add
  (``fma(b - a, f, a)``, a single rounding), except in the vertical pass
  of the replicated-edge columns (outputs left of the first input pixel
  centre or right of the last): IPP walks each such run in blocks of 16
  columns plus a remainder, and uses a separate multiply and add for the
  16-column blocks of 4-channel images and for a remainder of 5 or more
  columns (all channels of 4-channel images, the first two of 3-channel
  ones). Exactly 2x smaller on both axes: ``((a + b) + (c + d)) * 0.25``
  over each 2 x 2 block (the last ``out_w % 4`` columns of a 4-channel
  image: ``(((a + b) + c) + d) * 0.25``). Channel counts other than 1, 3, 4
  take the generic path, as in OpenCV. Measured on an AVX-512 CPU; a CPU
  without FMA would round the fused lerps differently. Inputs with a side
  of 1 pixel are treated differently by IPP and are not reproduced.
``flavour='generic'`` (``cv2.ipp.setUseIPP(False)``, builds without IPP
  such as ARM wheels): OpenCV's own ``resizeGeneric_``. Scale ``1 / (out /
  in)`` in float64, position ``float32((d + 0.5) * scale - 0.5)``, fraction
  ``p - floor(p)`` in float32, weights ``(1 - f, f)`` in float32, each pass
  ``a * w0 + b * w1`` (two products, one sum). Horizontally, positions left
  of 0 or at/after the last pixel take that pixel exactly; vertically the
  rows are clamped but the weights are not, so an edge output row is
  ``r * (1 - f) + r * f``. Exactly 2x smaller on both axes: the area
  shortcut ``(((a + b) + c) + d) * 0.25``, except where OpenCV's 4-lane SIMD
  loop sums ``(a + b) + (c + d)`` (every pixel of 4-channel images; the
  first ``4 * (out_w // 4)`` columns of 1-channel images).

On natural photos resized from 600 x 400 to 256 x 256 the two flavours
differ in 20-35 % of the float values, which flips 0.1-2 % of the values
truncated to uint8. Values are assumed finite (NaN / inf propagate
differently).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Flavour = Literal['ipp', 'generic']
FLAVOURS = ('ipp', 'generic')
_CUBIC_A = -0.75  # OpenCV's INTER_CUBIC (and PyTorch's bicubic) kernel.
_F32 = np.float32


# ---------------------------------------------------------------------------
# OpenCV INTER_LINEAR.
# ---------------------------------------------------------------------------


def _fma32(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
  """``x * y + z`` of float32 arrays with a single rounding to float32.

  The product is exact in float64 (24 + 24 bits); the sum ``s`` is rounded
  to float64 and its rounding error ``e`` recovered exactly (Knuth's
  TwoSum), so ``s + e`` is the exact result. Rounding ``s`` to float32 can
  only be wrong when ``s`` falls between two float32 values; the exact sum
  is then compared with their midpoint (ties to even).
  """
  x64, y64, z64 = (np.asarray(a, np.float64) for a in (x, y, z))
  p = x64 * y64
  s = p + z64
  bb = s - p
  err = (p - (s - bb)) + (z64 - bb)
  r = s.astype(_F32)
  r64 = r.astype(np.float64)
  up = r64 < s
  lo = np.where(up, r, np.nextafter(r, _F32(-np.inf)))
  hi = np.where(up, np.nextafter(r, _F32(np.inf)), r)
  mid = (lo.astype(np.float64) + hi.astype(np.float64)) * 0.5
  d = (s - mid) + err
  lo_even = (lo.view(np.int32) & 1) == 0
  out = np.where((d > 0) | ((d == 0) & ~lo_even), hi, lo)
  return np.where(r64 == s, r, out)


def _linear_taps(n_in: int, n_out: int, flavour: Flavour
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """``(i0, f, low, high)`` of one axis: left tap, float32 fraction, masks.

  ``i0 = floor(p)`` is unclamped; ``low`` / ``high`` mark positions left of
  the first pixel / at or after the last one.
  """
  d = np.arange(n_out, dtype=np.float64) + 0.5
  if flavour == 'ipp':
    p = d * (n_in / n_out) - 0.5
    i0 = np.floor(p)
    f = (p - i0).astype(_F32)
  else:
    p = (d * (1.0 / (n_out / n_in)) - 0.5).astype(_F32)
    i0 = np.floor(p)
    f = (p - i0).astype(_F32)
  i0 = i0.astype(np.int64)
  return i0, f, i0 < 0, i0 >= n_in - 1


def _bcast(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
  shape = [1] * ndim
  shape[axis] = v.shape[0]
  return v.reshape(shape)


def _linear_pass(x: np.ndarray, n_out: int, axis: int, flavour: Flavour,
                 plain: Sequence[tuple[np.ndarray, list[int]]] = ()
                 ) -> np.ndarray:
  """One INTER_LINEAR pass along ``axis`` (0: vertical, 1: horizontal).

  ``plain``: ``(columns, channels)`` blocks of a vertical ``'ipp'`` pass
  where the lerp is a multiply and an add instead of one FMA.
  """
  n_in = x.shape[axis]
  i0, f, low, high = _linear_taps(n_in, n_out, flavour)
  horizontal = axis == 1
  if horizontal:
    f = np.where(low | high, _F32(0), f)
  a = np.take(x, np.clip(i0, 0, n_in - 1), axis=axis)
  b = np.take(x, np.clip(i0 + 1, 0, n_in - 1), axis=axis)
  fb = _bcast(f, axis, x.ndim)
  if flavour == 'ipp':
    out = _fma32(b - a, fb, a)
    for cols, channels in plain:
      idx = np.ix_(np.arange(n_out), cols, channels)
      out[idx] = a[idx] + fb * (b[idx] - a[idx])
    return out
  out = a * (_F32(1) - fb) + b * fb
  if horizontal:  # OpenCV copies the last pixel past the right edge.
    out[:, high] = x[:, n_in - 1:n_in]
  return out


def _ipp_plain_blocks(w: int, out_w: int, channels: int
                      ) -> list[tuple[np.ndarray, list[int]]]:
  """Where IPP's vertical lerp is not fused: the replicated-edge columns.

  The output columns left of the first input pixel centre, and those right
  of the last, form two runs that IPP processes in blocks of 16 columns and
  a remainder. Measured on OpenCV 5.1.0 (IPP 2026.1, AVX-512 CPU), the
  lerp is a separate multiply and add for: every channel of the 16-column
  blocks of a 4-channel image; a remainder of 5 or more columns (every
  channel of a 4-channel image, the first two of a 3-channel one). Every
  other column, and every column of a 1-channel image, is fused.
  """
  plain_rem = {3: [0, 1], 4: [0, 1, 2, 3]}.get(channels)
  if plain_rem is None:
    return []
  _, _, low, high = _linear_taps(w, out_w, 'ipp')
  blocks = []
  for mask in (low, high):
    cols = np.nonzero(mask)[0]
    n16 = 16 * (len(cols) // 16)
    if channels == 4 and n16:
      blocks.append((cols[:n16], plain_rem))
    if len(cols) - n16 >= 5:
      blocks.append((cols[n16:], plain_rem))
  return blocks


def _half_2x2(x: np.ndarray, flavour: Flavour) -> np.ndarray:
  """Exact 2x downscale: the 2 x 2 block sums of each flavour, times 1/4."""
  a, b = x[0::2, 0::2], x[0::2, 1::2]
  c, d = x[1::2, 0::2], x[1::2, 1::2]
  pairwise = ((a + b) + (c + d)) * _F32(0.25)
  sequential = (((a + b) + c) + d) * _F32(0.25)
  cn = 1 if x.ndim == 2 else x.shape[2]
  # Columns summed pairwise: IPP: all but the last ``out_w % 4`` of a
  # 4-channel image, every column otherwise; generic OpenCV: its 4-lane SIMD
  # loop, every column of a 4-channel image and the first ``4 * (out_w //
  # 4)`` of a 1-channel one.
  n_out = pairwise.shape[1]
  if flavour == 'ipp':
    n = 4 * (n_out // 4) if cn == 4 else n_out
  else:
    n = {4: n_out, 1: 4 * (n_out // 4)}.get(cn, 0)
  sequential[:, :n] = pairwise[:, :n]
  return sequential


def resize_bilinear(img: np.ndarray, size: tuple[int, int], *,
                    flavour: Flavour = 'ipp') -> np.ndarray:
  """``cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)``, float32.

  Bit-exact to OpenCV 5.1.0 on float32 images of at least 2 x 2 pixels for
  both ``flavour`` values (see the module docstring for the arithmetic;
  ``'ipp'`` is what the x86-64 pip wheels compute by default). No
  antialiasing: a downscale samples rather than averages, except the exact
  2x case.

  Args:
    img: ``(H, W)`` or ``(H, W, C)`` image (cast to float32).
    size: ``(out_h, out_w)``.
    flavour: ``'ipp'`` (OpenCV with Intel IPP, the default of x86-64 wheels)
      or ``'generic'`` (OpenCV without IPP). With ``'ipp'``, channel counts
      IPP does not take (other than 1, 3, 4) use ``'generic'``, as OpenCV
      falls back to it.

  Returns:
    The resized float32 image.
  """
  if flavour not in FLAVOURS:
    raise ValueError(f'flavour must be one of {FLAVOURS}, got {flavour!r}.')
  x = np.asarray(img, np.float32)
  if x.ndim not in (2, 3):
    raise ValueError(f'Expected (H, W) or (H, W, C), got shape {x.shape}.')
  out_h, out_w = (int(s) for s in size)
  if out_h <= 0 or out_w <= 0:
    raise ValueError(f'size must be positive, got {size}.')
  h, w = x.shape[:2]
  if (out_h, out_w) == (h, w):
    return x.copy()
  if x.ndim == 3 and x.shape[2] not in (1, 3, 4):
    flavour = 'generic'
  if (h, w) == (2 * out_h, 2 * out_w):
    return _half_2x2(x, flavour)
  rows = _linear_pass(x, out_w, 1, flavour)
  plain = []
  if flavour == 'ipp' and x.ndim == 3:
    plain = _ipp_plain_blocks(w, out_w, x.shape[2])
  return _linear_pass(rows, out_h, 0, flavour, plain)


# ---------------------------------------------------------------------------
# OpenCV INTER_CUBIC.
# ---------------------------------------------------------------------------


def _cubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """Source indices (n_out, 4) and float32 weights (n_out, 4) of one axis.

  OpenCV ``INTER_CUBIC``: output pixel ``i`` samples the input at
  ``(i + 0.5) * n_in / n_out - 0.5`` with the 4-tap Keys kernel (a = -0.75)
  at the 4 nearest pixels, out-of-range taps clamped to the edge pixel; the
  kernel is not widened when shrinking.
  """
  # OpenCV: scale = 1 / (n_out / n_in) in double, position cast to float.
  scale = 1.0 / (n_out / n_in)
  src = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(
      _F32)
  left = np.floor(src)
  t = (src - left).astype(_F32)
  idx = left.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
  idx = np.clip(idx, 0, n_in - 1)
  a = _F32(_CUBIC_A)
  one = _F32(1.0)
  t1, u = t + one, one - t
  w0 = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a
  w1 = ((a + 2) * t - (a + 3)) * t * t + one
  w2 = ((a + 2) * u - (a + 3)) * u * u + one
  w3 = one - w0 - w1 - w2
  return idx, np.stack([w0, w1, w2, w3], axis=1).astype(_F32)


def _cubic_axis(img: np.ndarray, n_out: int, axis: int) -> np.ndarray:
  n_in = img.shape[axis]
  if n_in == n_out:
    return img
  idx, weights = _cubic_taps(n_in, n_out)
  out = np.zeros(
      img.shape[:axis] + (n_out,) + img.shape[axis + 1:], _F32)
  for k in range(4):
    out += (np.take(img, idx[:, k], axis=axis)
            * _bcast(weights[:, k], axis, img.ndim))
  return out


def resize_bicubic(img: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize as ``cv2.resize(img, (width, height), INTER_CUBIC)``.

  A port of OpenCV's generic float path (Keys kernel with a = -0.75,
  half-pixel centres, edge pixels replicated, no antialiasing when
  shrinking, float32 arithmetic, width pass then height pass, taps summed
  left to right). OpenCV 5.1.0 without IPP sums the vertical taps of most
  pixels right to left (its SIMD loop), so about a third of the values
  differ from it, by at most 2.4e-7; with IPP (the x86-64 wheels' default)
  OpenCV computes the weights differently and differs by up to ~4e-5, so
  this is not bit-exact to either (it feeds training crops, not metrics).
  Overshoot is not clipped. A side that keeps its length is copied exactly,
  so resizing to the current shape is the identity.

  Args:
    img: ``(H, W)`` or ``(H, W, C)`` float image (cast to float32).
    height: output height (>= 1).
    width: output width (>= 1).

  Returns:
    float32 (height, width[, C]); a new array.
  """
  img = np.asarray(img, _F32)
  if img.ndim not in (2, 3):
    raise ValueError(f'Expected (H, W) or (H, W, C), got {img.shape}.')
  if int(height) < 1 or int(width) < 1:
    raise ValueError(f'Output size must be >= 1, got {height}x{width}.')
  out = _cubic_axis(img, int(width), axis=1)
  out = _cubic_axis(out, int(height), axis=0)
  return out if out is not img else img.copy()


# ---------------------------------------------------------------------------
# MATLAB imresize (bicubic, antialiased when shrinking).
# ---------------------------------------------------------------------------


def _matlab_cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
  ax = np.abs(x)
  ax2, ax3 = ax * ax, ax * ax * ax
  near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
  far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
  return near + far


@functools.lru_cache(maxsize=64)
def matlab_imresize_matrix(in_size: int, out_size: int,
                           scale: float | None = None) -> np.ndarray:
  """The ``(out_size, in_size)`` matrix of MATLAB's 1-D bicubic resize.

  Follows the algorithm of MATLAB's ``imresize`` (``contributions``): output
  sample ``i`` (0-based) sits at input coordinate
  ``(i + 0.5) / scale - 0.5``; when shrinking, the cubic kernel is stretched
  by ``1 / scale`` (antialiasing); ``ceil(kernel width) + 2`` taps are used,
  weights are normalised to sum to 1, and taps that fall outside the image
  are mirrored with the edge sample repeated (MATLAB's 'symmetric').

  Args:
    in_size: Input length.
    out_size: Output length.
    scale: Scale factor; ``out_size / in_size`` when not given.

  Returns:
    A float64 matrix ``W`` so that ``resized = W @ signal`` (cached: do not
    modify it).
  """
  if scale is None:
    scale = out_size / in_size
  width = 4.0
  stretch = 1.0
  if scale < 1:
    width /= scale
    stretch = scale
  taps = int(math.ceil(width)) + 2
  pos = (np.arange(out_size, dtype=np.float64) + 0.5) / scale - 0.5
  left = np.floor(pos - width / 2.0) + 1.0  # MATLAB's left, made 0-based.
  idx = left[:, None] + np.arange(taps)[None, :]
  w = _matlab_cubic((pos[:, None] - idx) * stretch)
  w /= w.sum(axis=1, keepdims=True)
  # Symmetric extension with the edge repeated: -1 -> 0, n -> n - 1, ...
  period = 2 * in_size
  m = np.mod(idx.astype(np.int64), period)
  m = np.where(m >= in_size, period - 1 - m, m)
  mat = np.zeros((out_size, in_size), np.float64)
  rows = np.repeat(np.arange(out_size), taps)
  np.add.at(mat, (rows, m.ravel()), w.ravel())
  return mat


def matlab_imresize(img: np.ndarray, out_hw: tuple[int, int],
                    scale: float | None = None) -> np.ndarray:
  """MATLAB-style bicubic ``imresize`` of a 2-D float array, in float64.

  Args:
    img: ``(H, W)`` array.
    out_hw: Output ``(height, width)``.
    scale: Common scale factor passed to :func:`matlab_imresize_matrix`
      (MATLAB's ``imresize(img, scale)``); per-axis ``out / in`` when not
      given.

  Returns:
    The resized ``(out_h, out_w)`` float64 array (not rounded).
  """
  x = np.asarray(img, np.float64)
  mh = matlab_imresize_matrix(x.shape[0], out_hw[0], scale)
  mw = matlab_imresize_matrix(x.shape[1], out_hw[1], scale)
  return mh @ x @ mw.T


def matlab_box_downsample(x: np.ndarray, f: int) -> np.ndarray:
  """``imfilter(x, ones(f) / f^2, 'symmetric', 'same')`` then ``x(1:f:end)``.

  MATLAB centres an ``f``-tap kernel on tap ``floor((f + 1) / 2)``
  (1-based), so output pixel ``i`` averages input pixels
  ``i - (c - 1) .. i + (f - c)``; borders are mirrored with the edge pixel
  repeated ('symmetric'). Float64.

  Args:
    x: ``(H, W)`` array.
    f: the block size (>= 1).

  Returns:
    ``(ceil(H / f), ceil(W / f))`` float64 array.
  """
  c = (f + 1) // 2
  before, after = c - 1, f - c
  p = np.pad(x, ((before, after), (before, after)), mode='symmetric')
  h, w = x.shape
  rows = np.zeros((h, p.shape[1]), np.float64)
  for i in range(f):
    rows += p[i:i + h]
  out = np.zeros((h, w), np.float64)
  for j in range(f):
    out += rows[:, j:j + w]
  return (out / (f * f))[::f, ::f]


# ---------------------------------------------------------------------------
# PyTorch bilinear and the area/linear resampler.
# ---------------------------------------------------------------------------


def torch_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """PyTorch ``interpolate(mode='bilinear', align_corners=False)`` in 1-D.

  Returns:
    The float32 ``(out_size, in_size)`` matrix ``M`` with ``out = M @ x``.
  """
  scale = in_size / out_size
  src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  w1 = src - i0
  m = np.zeros((out_size, in_size), np.float64)
  np.add.at(m, (np.arange(out_size), i0), 1.0 - w1)
  np.add.at(m, (np.arange(out_size), i1), w1)
  return m.astype(_F32)


def area_linear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) resampling matrix: box (area) when shrinking, else linear.

  Shrinking: output ``i`` averages the input interval ``[i s, (i + 1) s)``,
  ``s = n_in / n_out``, with fractional pixels weighted by their overlap
  (OpenCV ``INTER_AREA``'s weights). Enlarging: half-pixel-centred linear
  interpolation with edge pixels replicated. Float64.
  """
  if n_out <= n_in:
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    hi = lo + scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / scale
  pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  pos = np.clip(pos, 0, n_in - 1)
  left = np.floor(pos).astype(int)
  right = np.minimum(left + 1, n_in - 1)
  frac = pos - left
  w = np.zeros((n_out, n_in))
  w[np.arange(n_out), left] += 1.0 - frac
  w[np.arange(n_out), right] += frac
  return w


def area_linear_resize(img: np.ndarray, height: int, width: int
                       ) -> np.ndarray:
  """Separable :func:`area_linear_matrix` resize of an (H, W, C) image.

  Returns:
    float64 ``(height, width, C)``, unrounded.
  """
  wy = area_linear_matrix(img.shape[0], height)
  wx = area_linear_matrix(img.shape[1], width)
  rows = np.tensordot(wy, np.asarray(img, np.float64), axes=(1, 0))
  return np.tensordot(wx, rows, axes=(1, 1)).transpose(1, 0, 2)
