"""RGFormer: the Restormer-style U-Net transformer ``G`` of RestoRect.

Spec: ``shared/spec/restorect.md`` §2.3–§2.5. Blocks are
``x + Attn(Norm1(x), z)`` then ``x + FFN(Norm2(x), z)``; the prior enters as a
channel-wise ``x * (1 + W z)`` inside Attn and FFN. Encoder, latent and
decoder blocks use Retinex cross-attention (queries from the first 3C/4
"reflectance" channels, keys/values from the last C/4 "illumination"
channels) driven by ``z_rex``; the refinement blocks use plain channel
attention driven by ``z_img``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import layers

Dtype = Any
PRIOR_DIM = 256
PRIOR_R_DIM = 192  # first 192 dims of z_rex drive reflectance, last 64 light
DECODER_LEVELS = ('decoder_level3', 'decoder_level2', 'decoder_level1')


def channel_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                      temperature: jax.Array, num_heads: int,
                      q_norm: nn.Module, k_norm: nn.Module) -> jax.Array:
  """MDTA channel attention with QK-LayerNorm and L2-normalisation.

  Args:
    q, k, v: (B, H, W, C); channels are ``(head, c)`` with head outermost.
    temperature: (heads, 1, 1) per-head scale.
    num_heads: number of heads.
    q_norm, k_norm: LayerNorms over the per-head channel axis.

  Returns:
    (B, H, W, C).
  """
  b, h, w, c = q.shape
  d = c // num_heads
  def heads(t):
    return t.reshape(b, h * w, num_heads, d)
  q, k, v = heads(q), heads(k), heads(v)
  q, k = q_norm(q), k_norm(k)
  # F.normalize over the pixel axis: x / max(||x||_2, 1e-12).
  q = q / jnp.maximum(jnp.linalg.norm(q, axis=1, keepdims=True), 1e-12)
  k = k / jnp.maximum(jnp.linalg.norm(k, axis=1, keepdims=True), 1e-12)
  logits = jnp.einsum('bnhd,bnhe->bhde', q, k)
  logits = logits * temperature.reshape(1, num_heads, 1, 1).astype(q.dtype)
  attn = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum('bhde,bnhe->bnhd', attn, v)
  return out.reshape(b, h, w, c)


class _AttentionBase(nn.Module):
  """Temperature, QK-norms and output projection shared by both attentions."""
  dim: int
  num_heads: int
  depthwise: str = 'auto'  # layers.depthwise_conv3x3's formulation
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _kw(self, name):
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  def _dwconv(self, name):
    return layers.DWConv3x3(self.depthwise, **self._kw(name))

  def _attend(self, q, k, v):
    temperature = self.param('temperature', nn.initializers.ones,
                             (self.num_heads, 1, 1), self.param_dtype)
    out = channel_attention(q, k, v, temperature, self.num_heads,
                            layers.LayerNorm(**self._kw('q_norm')),
                            layers.LayerNorm(**self._kw('k_norm')))
    return layers.Conv2d(self.dim, 1, **self._kw('project_out'))(out)


class RetinexAttention(_AttentionBase):
  """Retinex cross-attention ("Rttention"): R channels query, L channels key."""

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
    c = self.dim
    cr = 3 * c // 4
    x_r, x_i = x[..., :cr], x[..., cr:]
    w_r = layers.Linear(cr, use_bias=False, **self._kw('kernel_R.0'))(
        z[:, :PRIOR_R_DIM])
    w_i = layers.Linear(c - cr, use_bias=False, **self._kw('kernel_I.0'))(
        z[:, PRIOR_R_DIM:])
    x_r = x_r * (1 + w_r[:, None, None, :])
    x_i = x_i * (1 + w_i[:, None, None, :])
    q = layers.Conv2d(c, 1, **self._kw('q_R'))(x_r)
    q = self._dwconv('q_dwconv')(q)
    kv = layers.Conv2d(2 * c, 1, **self._kw('kv_I'))(x_i)
    kv = self._dwconv('kv_dwconv')(kv)
    return self._attend(q, kv[..., :c], kv[..., c:])


class Attention(_AttentionBase):
  """Plain MDTA channel attention with prior modulation (refinement blocks)."""

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
    c = self.dim
    w = layers.Linear(c, use_bias=False, **self._kw('kernel.0'))(z)
    x = x * (1 + w[:, None, None, :])
    qkv = layers.Conv2d(3 * c, 1, **self._kw('qkv'))(x)
    qkv = self._dwconv('qkv_dwconv')(qkv)
    return self._attend(qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:])


class FeedForward(nn.Module):
  """Gated-dconv FFN (GDFN) with prior modulation; exact GELU on 1st half."""
  dim: int
  ffn_expansion_factor: float
  depthwise: str = 'auto'  # layers.depthwise_conv3x3's formulation
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    hidden = int(self.dim * self.ffn_expansion_factor)
    w = layers.Linear(self.dim, use_bias=False, name='kernel.0', **kw)(z)
    x = x * (1 + w[:, None, None, :])
    u = layers.Conv2d(2 * hidden, 1, name='project_in', **kw)(x)
    u = layers.DWConv3x3(self.depthwise, name='dwconv', **kw)(u)
    u = layers.gelu(u[..., :hidden]) * u[..., hidden:]
    return layers.Conv2d(self.dim, 1, name='project_out', **kw)(u)


class TransformerBlock(nn.Module):
  """Pre-norm block; ``retinex`` picks Rttention (True) or Attention.

  ``depthwise`` is the formulation of its depthwise 3×3 convs
  (``layers.depthwise_conv3x3``); it does not change the parameters.
  """
  dim: int
  num_heads: int
  ffn_expansion_factor: float = 2.66
  layer_norm_type: str = 'SpatialChannel'
  retinex: bool = True
  depthwise: str = 'auto'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    attn_cls = RetinexAttention if self.retinex else Attention
    norm = lambda name: layers.Norm(self.layer_norm_type, name=name, **kw)
    dw = layers.check_depthwise(self.depthwise)
    attn = attn_cls(self.dim, self.num_heads, depthwise=dw, name='attn', **kw)
    x = x + attn(norm('norm1')(x), z)
    x = x + FeedForward(self.dim, self.ffn_expansion_factor, depthwise=dw,
                        name='ffn', **kw)(norm('norm2')(x), z)
    return x


class DecomHead(nn.Module):
  """The decomposition head inside G (``G.decom.decom.{0,2,4,6}``)."""
  dim: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype)
    for i in (0, 2, 4):
      x = layers.leaky_relu(
          layers.Conv2d(self.dim, 3, name=f'decom.{i}', **kw)(x), 0.2)
    return jax.nn.relu(layers.Conv2d(4, 3, name='decom.6', **kw)(x))


class _Resample(nn.Module):
  """conv3x3 (``body.0``) then pixel (un)shuffle by 2."""
  features: int
  down: bool
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.Conv2d(self.features, 3, name='body.0', dtype=self.dtype,
                      param_dtype=self.param_dtype)(x)
    return layers.pixel_unshuffle(x, 2) if self.down else layers.pixel_shuffle(
        x, 2)


class GFields(nn.Module):
  """G's width and depth settings (shared with the composites that hold G)."""
  dim: int = 64
  num_blocks: Sequence[int] = (3, 3, 3, 3)
  num_refinement_blocks: int = 3
  heads: Sequence[int] = (1, 2, 4, 8)
  ffn_expansion_factor: float = 2.66
  layer_norm_type: str = 'SpatialChannel'


class RGFormer(GFields):
  """The restoration network G.

  Attributes:
    dim: base width (64 in every reference config).
    num_blocks: blocks per encoder level / latent.
    num_refinement_blocks: plain-attention blocks at full resolution.
    heads: heads per level.
    ffn_expansion_factor: GDFN hidden ratio (2.66).
    layer_norm_type: ``'SpatialChannel'`` (SCLN) or ``'WithBias'``.
    decom_head: build the decomposition head (teacher / S2 training).
    remat: recompute each transformer block's activations in the backward
      pass (``nn.remat``) instead of storing them; parameters unchanged.
    depthwise: formulation of the blocks' depthwise 3×3 convs, one of
      ``layers.DEPTHWISE_FORMULATIONS`` (``'auto'``: per backend, see
      ``layers.depthwise_conv3x3``); parameters unchanged.
  """
  decom_head: bool = True
  remat: bool = False
  depthwise: str = 'auto'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _level(self, name, x, z, n, width, heads, retinex=True):
    block = nn.remat(TransformerBlock) if self.remat else TransformerBlock
    for i in range(n):
      x = block(
          width, heads, self.ffn_expansion_factor, self.layer_norm_type,
          retinex=retinex, depthwise=self.depthwise, dtype=self.dtype,
          param_dtype=self.param_dtype, name=f'{name}.{i}')(x, z)
    if name in DECODER_LEVELS:
      # Read with ``apply(..., mutable=['intermediates'])`` (FLEX on decoder
      # features, the paper's reading); a no-op otherwise.
      self.sow('intermediates', name, x)
    return x

  @nn.compact
  def __call__(self, lq: jax.Array, z_rex: jax.Array, z_img: jax.Array):
    """Restores ``lq``.

    Args:
      lq: (B, H, W, 3) in [0, 1]; H and W multiples of 8.
      z_rex: (B, 256) Retinex prior.
      z_img: (B, 256) image prior.

    Returns:
      ``out`` (B, H, W, 3) when the decomposition head is off, else
      ``(out, decom_img (B, H, W, 3), decom_mat (B, H, W, 4))``.
    """
    layers.check_depthwise(self.depthwise)
    layers.check_image(lq, 3, 'RGFormer input lq', multiple=8)
    layers.check_prior(z_rex, lq.shape[0], PRIOR_DIM, 'RGFormer z_rex')
    layers.check_prior(z_img, lq.shape[0], PRIOR_DIM, 'RGFormer z_img')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    d, nb, hd = self.dim, self.num_blocks, self.heads
    x = lq.astype(self.dtype)

    x = layers.Conv2d(d, 3, name='patch_embed.proj', **kw)(x)
    enc1 = self._level('encoder_level1', x, z_rex, nb[0], d, hd[0])
    x = _Resample(d // 2, True, name='down1_2', **kw)(enc1)
    enc2 = self._level('encoder_level2', x, z_rex, nb[1], 2 * d, hd[1])
    x = _Resample(d, True, name='down2_3', **kw)(enc2)
    enc3 = self._level('encoder_level3', x, z_rex, nb[2], 4 * d, hd[2])
    x = _Resample(2 * d, True, name='down3_4', **kw)(enc3)
    x = self._level('latent', x, z_rex, nb[3], 8 * d, hd[3])

    x = _Resample(16 * d, False, name='up4_3', **kw)(x)
    x = jnp.concatenate([x, enc3], axis=-1)
    x = layers.Conv2d(4 * d, 1, name='reduce_chan_level3', **kw)(x)
    x = self._level('decoder_level3', x, z_rex, nb[2], 4 * d, hd[2])
    x = _Resample(8 * d, False, name='up3_2', **kw)(x)
    x = jnp.concatenate([x, enc2], axis=-1)
    x = layers.Conv2d(2 * d, 1, name='reduce_chan_level2', **kw)(x)
    x = self._level('decoder_level2', x, z_rex, nb[1], 2 * d, hd[1])
    up1 = _Resample(4 * d, False, name='up2_1', **kw)(x)
    x = jnp.concatenate([up1, enc1], axis=-1)
    x = self._level('decoder_level1', x, z_rex, nb[0], 2 * d, hd[0])
    x = self._level('img_refinement', x, z_img, self.num_refinement_blocks,
                    2 * d, hd[0], retinex=False)
    out = layers.Conv2d(3, 3, name='img_output', **kw)(x) + lq.astype(
        self.dtype)
    if not self.decom_head:
      return out
    head = DecomHead(d, name='decom', **kw)
    y = head(enc1)
    decom_img = y[..., :3] * y[..., 3:4]
    decom_mat = head(up1)
    return out, decom_img, decom_mat
