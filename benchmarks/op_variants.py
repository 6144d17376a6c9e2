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

The depthwise 3×3 convolution of the transformer blocks
(``layers.depthwise_conv3x3``, a sum of nine shifted slices) can be swapped
inside :func:`depthwise_conv` for:

* ``custom_vjp``: the same forward with a hand-written backward — the input
  gradient is the same shift-sum of the (padded) cotangent with the taps
  flipped, the weight gradient nine per-tap reductions — instead of
  autodiff's transpose, which pads each of the nine slice cotangents to the
  full padded size and adds them;
* ``custom_vjp_pad``: as ``custom_vjp``, but both gradients are written
  with pads of the cotangent instead of shifted slices (XLA:CPU fuses pads
  into the consumer loop; it copies each offset slice first);
* ``lax``: one grouped ``lax.conv`` (``feature_group_count=C``), which the
  project avoids (``shared/spec/stack.md`` §2i), for reference.

IR-Flow's linear attention can be swapped inside :func:`irflow_attention`
for ``folded``: the k-softmax denominators and the 1/n scale divide the
small (heads, 32, 32) context instead of the (n, heads, 32) keys and values
(the same function up to rounding; same parameters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import irflow_unet
from restorect_jax.models import layers

_ORIGINAL = jax.lax.conv_general_dilated
_ORIGINAL_DW = layers.depthwise_conv3x3


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


# ----------------------------------------------------------------------------
# Depthwise 3×3.
# ----------------------------------------------------------------------------


@jax.custom_vjp
def depthwise_custom_vjp(x: jax.Array, w: jax.Array) -> jax.Array:
  """``layers.depthwise_conv3x3`` with a hand-written backward pass."""
  return _ORIGINAL_DW(x, w)


def _dw_fwd(x, w):
  return _ORIGINAL_DW(x, w), (x, w)


def _dw_bwd(res, g):
  # The barrier keeps XLA from merging the backward's shifted slices of x
  # with the forward's (CSE), which would make it materialise all nine.
  x, w, g = jax.lax.optimization_barrier(res + (g,))
  _, h, wd, _ = x.shape
  # y[p] = Σ_ij x[p + (i, j) - 1] w[i, j]  ⇒  dx[p] = Σ_ij g[p - (i, j) + 1]
  # w[i, j]: the same shift-sum of g with the taps flipped.
  dx = _ORIGINAL_DW(g, w[::-1, ::-1])
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dw = jnp.stack([
      jnp.sum(xp[:, i:i + h, j:j + wd, :] * g, axis=(0, 1, 2))
      for i in range(3) for j in range(3)]).reshape(w.shape)
  return dx, dw.astype(w.dtype)


depthwise_custom_vjp.defvjp(_dw_fwd, _dw_bwd)


_TAPS = tuple((i, j) for i in range(3) for j in range(3))


def _shift_pad(t: jax.Array, i: int, j: int) -> jax.Array:
  """``t`` placed at offset (i, j) in a frame two pixels larger (zeros)."""
  return jnp.pad(t, ((0, 0), (i, 2 - i), (j, 2 - j), (0, 0)))


@jax.custom_vjp
def depthwise_custom_vjp_pad(x: jax.Array, w: jax.Array) -> jax.Array:
  """``layers.depthwise_conv3x3`` with a slice-free backward pass."""
  return _ORIGINAL_DW(x, w)


def _dw_bwd_pad(res, g):
  # XLA:CPU does not fuse a strided/offset slice into its consumer (each of
  # the nine shifted slices becomes a copy), but it does fuse pads. So both
  # gradients are written with pads of the cotangent only:
  #   dx_padded = Σ_ij pad_ij(g) w[i, j], dx = its interior (one crop);
  #   dw[i, j]  = Σ pad(x) · pad_ij(g)  (nine fused multiply-reductions).
  x, w, g = jax.lax.optimization_barrier(res + (g,))
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dxp = None
  for i, j in _TAPS:
    t = _shift_pad(g, i, j) * w[i, j]
    dxp = t if dxp is None else dxp + t
  dw = jnp.stack([jnp.sum(xp * _shift_pad(g, i, j), axis=(0, 1, 2))
                  for i, j in _TAPS]).reshape(w.shape)
  return dxp[:, 1:-1, 1:-1, :], dw.astype(w.dtype)


depthwise_custom_vjp_pad.defvjp(_dw_fwd, _dw_bwd_pad)


def depthwise_lax(x: jax.Array, w: jax.Array) -> jax.Array:
  """Depthwise 3×3 as a grouped ``lax.conv`` (slow on XLA:CPU)."""
  c = x.shape[-1]
  return _ORIGINAL(x, w[:, :, None, :], (1, 1), ((1, 1), (1, 1)),
                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                   feature_group_count=c)


DEPTHWISE = {'shift': None, 'custom_vjp': depthwise_custom_vjp,
             'custom_vjp_pad': depthwise_custom_vjp_pad, 'lax': depthwise_lax}


@contextlib.contextmanager
def depthwise_conv(kind: str) -> Iterator[None]:
  """Within the block, ``layers.depthwise_conv3x3`` is ``DEPTHWISE[kind]``."""
  if kind not in DEPTHWISE:
    raise ValueError(f'Unknown depthwise conv {kind!r}; known: '
                     f'{sorted(DEPTHWISE)}.')
  impl = DEPTHWISE[kind]
  if impl is None:
    yield
    return
  layers.depthwise_conv3x3 = impl
  try:
    yield
  finally:
    layers.depthwise_conv3x3 = _ORIGINAL_DW


# ----------------------------------------------------------------------------
# IR-Flow linear attention.
# ----------------------------------------------------------------------------


class FoldedLinearAttention(irflow_unet.LinearAttention):
  """``irflow_unet.LinearAttention`` with its normalisers folded."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    heads, d = irflow_unet.HEADS, irflow_unet.DIM_HEAD
    b, h, w, _ = x.shape
    n = h * w
    qkv = layers.Conv2d(3 * heads * d, 1, **self._kw('to_qkv'))(x)
    qkv = qkv.reshape(b, n, 3, heads, d).astype(jnp.float32)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, heads, d)
    q = jax.nn.softmax(q, axis=-1) * (d ** -0.5)
    # softmax(k, axis=1)ᵀ (v / n) = (exp(k - m)ᵀ v) / (Σ exp(k - m) · n).
    e = jnp.exp(k - jax.lax.stop_gradient(k.max(axis=1, keepdims=True)))
    context = jnp.einsum('bnhd,bnhe->bhde', e, v)
    context = context / (e.sum(axis=1)[..., None] * n)
    out = jnp.einsum('bhde,bnhd->bnhe', context, q)
    out = out.reshape(b, h, w, heads * d).astype(self.dtype)
    out = layers.Conv2d(self.dim, 1, use_bias=True,
                        **self._kw('to_out.0'))(out)
    return irflow_unet.ChannelLayerNorm(**self._kw('to_out.1'))(out)


IRFLOW_ATTENTION = {'reference': None, 'folded': FoldedLinearAttention}


@contextlib.contextmanager
def irflow_attention(kind: str) -> Iterator[None]:
  """Within the block, IR-Flow builds ``IRFLOW_ATTENTION[kind]``."""
  if kind not in IRFLOW_ATTENTION:
    raise ValueError(f'Unknown IR-Flow attention {kind!r}; known: '
                     f'{sorted(IRFLOW_ATTENTION)}.')
  impl, original = IRFLOW_ATTENTION[kind], irflow_unet.LinearAttention
  if impl is None:
    yield
    return
  irflow_unet.LinearAttention = impl
  try:
    yield
  finally:
    irflow_unet.LinearAttention = original
