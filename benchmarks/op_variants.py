"""Alternative formulations of model ops, swapped in for measurements.

``layers.Conv2d`` computes a dense k×k convolution with one
``jax.lax.conv_general_dilated`` (NHWC, HWIO). XLA:CPU's convolution,
especially its backward pass, is slower than oneDNN's in PyTorch
(``shared/spec/stack.md`` §2h), so the benchmarks can swap it, inside
:func:`dense_conv`, for:

* ``im2col``: the k² shifted slices concatenated on the channel axis, one
  (B·H·W, k²·Cin) × (k²·Cin, Cout) matmul;
* ``taps``: a sum over the k² taps of a shifted slice times its (Cin, Cout)
  weight — k² matmuls, no k²-times-larger intermediate.

Both are exact reformulations (same sums, different order) of a stride-1,
dilation-1 NHWC/HWIO convolution with explicit padding; any other call goes
to the original. The swap patches ``jax.lax.conv_general_dilated`` for the
duration of the ``with`` block, so it applies to every module that calls it
(the DecomNet, the prior encoders, G's 3×3 convs) and only there.

The depthwise 3×3 formulation and IR-Flow's linear attention are model
options, not swaps: ``Model(..., depthwise=...)`` and ``Model('irflow',
attention=...)`` (``restorect_jax/models/__init__.py``); the scripts' flags
``--depthwise`` and ``--irflow_attention`` set them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp

_ORIGINAL = jax.lax.conv_general_dilated


def _shifted(x: jax.Array, kh: int, kw: int, pad) -> list[jax.Array]:
  """The kh·kw shifted (B, H', W', C) windows of the padded input."""
  (pt, pb), (pl, pr) = pad
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  h = xp.shape[1] - kh + 1
  w = xp.shape[2] - kw + 1
  return [xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]


def conv_im2col(x: jax.Array, w: jax.Array, pad) -> jax.Array:
  """Stride-1 NHWC/HWIO convolution as one im2col matmul."""
  kh, kw, cin, cout = w.shape
  cols = jnp.concatenate(_shifted(x, kh, kw, pad), axis=-1)
  return jnp.einsum('bhwk,kd->bhwd', cols, w.reshape(kh * kw * cin, cout))


def conv_taps(x: jax.Array, w: jax.Array, pad) -> jax.Array:
  """Stride-1 NHWC/HWIO convolution as a sum of per-tap matmuls."""
  kh, kw, _, _ = w.shape
  out = None
  for t, xs in enumerate(_shifted(x, kh, kw, pad)):
    y = jnp.einsum('bhwc,cd->bhwd', xs, w[t // kw, t % kw])
    out = y if out is None else out + y
  return out


DENSE_CONVS = {'lax': None, 'im2col': conv_im2col, 'taps': conv_taps}


def _is_plain_nhwc(window_strides, padding, lhs_dilation, rhs_dilation,
                   dimension_numbers, feature_group_count,
                   batch_group_count) -> bool:
  if tuple(dimension_numbers or ()) != ('NHWC', 'HWIO', 'NHWC'):
    return False
  if tuple(window_strides) != (1, 1) or isinstance(padding, str):
    return False
  return (lhs_dilation in (None, (1, 1)) and rhs_dilation in (None, (1, 1))
          and feature_group_count == 1 and batch_group_count == 1)


@contextlib.contextmanager
def dense_conv(kind: str) -> Iterator[None]:
  """Within the block, dense NHWC convolutions use ``DENSE_CONVS[kind]``."""
  if kind not in DENSE_CONVS:
    raise ValueError(f'Unknown dense conv {kind!r}; known: '
                     f'{sorted(DENSE_CONVS)}.')
  impl = DENSE_CONVS[kind]
  if impl is None:
    yield
    return

  def patched(lhs, rhs, window_strides, padding, lhs_dilation=None,
              rhs_dilation=None, dimension_numbers=None,
              feature_group_count=1, batch_group_count=1, **kwargs):
    if not kwargs and _is_plain_nhwc(
        window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers, feature_group_count, batch_group_count):
      return impl(lhs, rhs, padding)
    return _ORIGINAL(lhs, rhs, window_strides, padding, lhs_dilation,
                     rhs_dilation, dimension_numbers, feature_group_count,
                     batch_group_count, **kwargs)

  jax.lax.conv_general_dilated = patched
  try:
    yield
  finally:
    jax.lax.conv_general_dilated = _ORIGINAL
