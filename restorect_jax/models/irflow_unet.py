"""IR-Flow's ConditionalUNet and its time-free twin UNet.

Spec: ``shared/spec/irflow.md`` §4.1–§4.2, §10–§12. A four-level U-Net
(widths ``nf·2^i``, middle ``16·nf``) of time-modulated ResBlocks and
linear-attention blocks; the network predicts the cumulative velocity
directly (no global residual). The input is reflect-padded on the bottom and
right to a multiple of ``2**depth`` and the output cropped back.

Parameter paths joined with ``.`` are the PyTorch state-dict keys
(``downs.0.2.fn.fn.to_qkv.weight``, ``ups.0.3.1.bias``, ``time_mlp.1.weight``
...), so ``restorect_jax.convert`` loads the reference checkpoints without a
rename table. The gain-only LayerNorms keep their gain ``g`` as (C,) (PyTorch
stores (1, C, 1, 1); the converter reshapes).

Sizes (``jax.eval_shape``, equal to the reference, spec §4.1): nf 64 /
depth 4 → ConditionalUNet 137,138,115 parameters in 151 tensors, UNet
133,009,475 in 109.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import layers

Dtype = Any
HEADS = 4
DIM_HEAD = 32  # inner width HEADS * DIM_HEAD = 128 for every nf
ATTENTION_FORMULATIONS = ('folded', 'reference')


def check_attention(formulation: str) -> str:
  """Returns ``formulation`` if it is in ``ATTENTION_FORMULATIONS``."""
  return layers.check_choice(formulation, ATTENTION_FORMULATIONS,
                             'attention')


def sinusoidal_embedding(k: jax.Array, dim: int) -> jax.Array:
  """``SinusoidalPosEmb(dim)`` of the raw (integer) time ``k``.

  ``freq_j = exp(-j·ln(10000) / (half - 1))`` for ``j < half = dim // 2``
  (note the ``half - 1`` denominator), ``[sin(k·freq), cos(k·freq)]``.

  Args:
    k: (N,) times, e.g. integers in [0, 1000].
    dim: the embedding width (even, at least 4).

  Returns:
    (N, dim) float32.
  """
  half = dim // 2
  scale = math.log(10000.0) / (half - 1)
  freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * jnp.float32(-scale))
  args = k.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def _time_array(k: Any, batch: int | None) -> jax.Array:
  """The time as a (N,) array; N is 1 or ``batch`` (any N if None)."""
  k = jnp.asarray(k)
  if k.ndim == 0:
    k = k[None]
  if k.ndim != 1 or (batch is not None and k.shape[0] not in (1, batch)):
    want = 'a scalar or shape (N,)' if batch is None else (
        f'a scalar, shape (1,) or shape ({batch},)')
    raise ValueError(f'The time k must be {want}, got shape {k.shape}.')
  return k


class ChannelLayerNorm(nn.Module):
  """Gain-only LayerNorm over channels (biased variance; eps 1e-5 in fp32)."""
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    g = self.param('g', nn.initializers.ones, (x.shape[-1],),
                   self.param_dtype)
    eps = 1e-5 if jnp.dtype(self.dtype) == jnp.float32 else 1e-3
    xf = x.astype(jnp.float32)
    mean = xf.mean(-1, keepdims=True)
    var = jnp.square(xf - mean).mean(-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + eps) * g.astype(jnp.float32)
    return y.astype(self.dtype)


class LinearAttention(nn.Module):
  """Linear attention, 4 heads × 32: q softmax over channels, k over pixels.

  Per head, ``out_n = Cᵀ softmax(q_n) / √32`` with the (32, 32) context
  ``C = Σ_n softmax_n(k)_nᵀ v_n / N`` (N pixels). Two formulations of the
  same function (equal up to float rounding, same parameters):

  * ``'reference'``: as the reference writes it — the (N, heads, 32) keys
    are normalised by their softmax over pixels and the values divided by
    N, then the (heads, 32, 32) context is formed;
  * ``'folded'``: the context is formed from ``exp(k - max_n k)`` and the
    raw values, and the softmax denominators and 1/N divide the small
    context instead (1.17× on the IR-Flow inference row on CPU,
    ``benchmarks/README.md``).

  Attributes:
    dim: input and output channels.
    formulation: ``'folded'`` or ``'reference'``.
  """
  dim: int
  formulation: str = 'folded'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _kw(self, name: str) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, _ = x.shape
    n = h * w
    qkv = layers.Conv2d(3 * HEADS * DIM_HEAD, 1, **self._kw('to_qkv'))(x)
    qkv = qkv.reshape(b, n, 3, HEADS, DIM_HEAD).astype(jnp.float32)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, heads, d)
    q = jax.nn.softmax(q, axis=-1) * (DIM_HEAD ** -0.5)
    if check_attention(self.formulation) == 'reference':
      k = jax.nn.softmax(k, axis=1)
      v = v / n
      context = jnp.einsum('bnhd,bnhe->bhde', k, v)
    else:
      # softmax_n(k)ᵀ (v / n) = (exp(k - m)ᵀ v) / (Σ_n exp(k - m) · n); the
      # result does not depend on m, so no gradient flows through it.
      e = jnp.exp(k - jax.lax.stop_gradient(k.max(axis=1, keepdims=True)))
      context = jnp.einsum('bnhd,bnhe->bhde', e, v)
      context = context / (e.sum(axis=1)[..., None] * n)
    out = jnp.einsum('bhde,bnhd->bnhe', context, q)
    out = out.reshape(b, h, w, HEADS * DIM_HEAD).astype(self.dtype)
    out = layers.Conv2d(self.dim, 1, use_bias=True,
                        **self._kw('to_out.0'))(out)
    return ChannelLayerNorm(**self._kw('to_out.1'))(out)


class AttentionBlock(nn.Module):
  """``Residual(PreNorm(dim, LinearAttention(dim)))``: x + attn(norm(x))."""
  dim: int
  attention: str = 'folded'  # LinearAttention's formulation
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    y = ChannelLayerNorm(**kw, name='fn.norm')(x)
    return LinearAttention(self.dim, self.attention, **kw, name='fn.fn')(
        y) + x


class ResBlock(nn.Module):
  """Two 3×3 convs with SiLU; time scale-then-shift after the first.

  Attributes:
    dim_out: output channels; a bias-free 1×1 ``res_conv`` maps the skip when
      the input width differs.
    conditional: whether the block has the time ``mlp`` (SiLU → Linear to
      ``2·dim_out``, split into scale then shift).
  """
  dim_out: int
  conditional: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _kw(self, name: str) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, temb: jax.Array | None) -> jax.Array:
    c = self.dim_out
    y = layers.Conv2d(c, 3, **self._kw('block1.proj'))(x)
    if self.conditional:
      ss = layers.Linear(2 * c, **self._kw('mlp.1'))(nn.silu(temb))
      scale, shift = ss[:, None, None, :c], ss[:, None, None, c:]
      y = y * (scale + 1) + shift
    y = nn.silu(y)
    y = nn.silu(layers.Conv2d(c, 3, **self._kw('block2.proj'))(y))
    if x.shape[-1] != c:
      x = layers.Conv2d(c, 1, **self._kw('res_conv'))(x)
    return y + x


class _IRFlowUNet(nn.Module):
  """The graph shared by :class:`ConditionalUNet` and :class:`UNet`."""
  nf: int = 64
  depth: int = 4
  in_nc: int = 3
  out_nc: int = 3
  remat: bool = False
  attention: str = 'folded'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  conditional: ClassVar[bool] = True

  def _kw(self, name: str) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  def _check_config(self) -> None:
    if self.nf < 4 or self.nf % 2:
      raise ValueError(f'nf must be even and at least 4, got {self.nf}.')
    if self.depth < 1:
      raise ValueError(f'depth must be at least 1, got {self.depth}.')
    check_attention(self.attention)

  @nn.compact
  def _net(self, x: jax.Array | None, k: Any) -> jax.Array:
    """The network; with ``x`` None only the time embedding."""
    self._check_config()
    nf, depth, kw = self.nf, self.depth, self._kw
    temb = None
    if self.conditional:
      k = _time_array(k, None if x is None else x.shape[0])
      temb = sinusoidal_embedding(k, nf)
      temb = layers.Linear(4 * nf, **kw('time_mlp.1'))(temb)
      temb = layers.Linear(4 * nf, **kw('time_mlp.3'))(layers.gelu(temb))
      if x is None:
        return temb  # (N, 4·nf)

    layers.check_image(x, self.in_nc, type(self).__name__)
    x, (h, w) = layers.reflect_pad_to_multiple(x.astype(self.dtype),
                                               2 ** depth)
    # remat: recompute block activations in the backward pass (same params).
    res_cls = nn.remat(ResBlock) if self.remat else ResBlock
    attn_cls = nn.remat(AttentionBlock) if self.remat else AttentionBlock
    res = lambda c, name: res_cls(c, self.conditional, **kw(name))
    attn = lambda c, name: attn_cls(c, self.attention, **kw(name))
    dims = [nf * 2 ** i for i in range(depth + 1)]

    x = layers.Conv2d(nf, 7, **kw('init_conv'))(x)
    x_init = x
    skips = []
    for i in range(depth):
      x = res(dims[i], f'downs.{i}.0')(x, temb)
      skips.append(x)
      x = res(dims[i], f'downs.{i}.1')(x, temb)
      x = attn(dims[i], f'downs.{i}.2')(x)
      skips.append(x)
      if i < depth - 1:
        x = layers.Conv2d(dims[i + 1], 4, stride=2, padding=1,
                          use_bias=True, **kw(f'downs.{i}.3'))(x)
      else:  # the last level widens without down-sampling
        x = layers.Conv2d(dims[i + 1], 3, **kw(f'downs.{i}.3'))(x)

    x = res(dims[-1], 'mid_block1')(x, temb)
    x = attn(dims[-1], 'mid_attn')(x)
    x = res(dims[-1], 'mid_block2')(x, temb)

    for j in range(depth):
      i = depth - 1 - j
      x = res(dims[i + 1], f'ups.{j}.0')(
          jnp.concatenate([x, skips.pop()], -1), temb)
      x = res(dims[i + 1], f'ups.{j}.1')(
          jnp.concatenate([x, skips.pop()], -1), temb)
      x = attn(dims[i + 1], f'ups.{j}.2')(x)
      if i > 0:
        x = layers.Conv2d(dims[i], 3, use_bias=True, **kw(f'ups.{j}.3.1'))(
            layers.upsample_nearest2x(x))
      else:
        x = layers.Conv2d(dims[i], 3, **kw(f'ups.{j}.3'))(x)

    x = res(nf, 'final_res_block')(jnp.concatenate([x, x_init], -1), temb)
    x = layers.Conv2d(self.out_nc, 3, use_bias=True, **kw('final_conv'))(x)
    return x[:, :h, :w]


class ConditionalUNet(_IRFlowUNet):
  """IR-Flow's time-conditioned U-Net ``f(x_t, k)`` (spec §4.1).

  Attributes:
    nf: base width (levels ``nf·2^i``, middle ``16·nf``).
    depth: number of levels; the input is padded to a multiple of
      ``2**depth`` (only ``depth - 1`` down-samplings happen).
    in_nc: input channels.
    out_nc: output channels.
    remat: recompute each ResBlock's and attention block's activations in
      the backward pass (``nn.remat``) instead of storing them.
    attention: the linear attention's formulation, ``'folded'`` (default)
      or ``'reference'`` (:class:`LinearAttention`; same parameters).
  """

  conditional: ClassVar[bool] = True

  def __call__(self, x: jax.Array, k: Any) -> jax.Array:
    """Runs the network.

    Args:
      x: (B, H, W, in_nc) image; any H, W (reflect-padded, then cropped).
      k: integer time: a python int, a 0-d array, shape (1,) (broadcast over
        B) or (B,).

    Returns:
      (B, H, W, out_nc), the cumulative velocity.
    """
    return self._net(x, k)

  def time_embedding(self, k: Any) -> jax.Array:
    """``time_mlp(k)``: sinusoid → Linear → exact GELU → Linear, (N, 4·nf)."""
    return self._net(None, k)


class UNet(_IRFlowUNet):
  """The time-free twin of :class:`ConditionalUNet` (spec §4.2)."""

  conditional: ClassVar[bool] = False

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, in_nc) to (B, H, W, out_nc); any H, W."""
    return self._net(x, None)
