"""Prior encoders PE and RPE (Reti-Diff "CPEN"), spec §2.2.

Sequential indices follow the reference: with ``n = n_encoder_res`` the first
conv is ``E.0``, the ResBlocks ``E.2 … E.{n+1}`` and the next convs
``E.{n+2}``, ``E.{n+4}``, ``E.{n+6}``. In the RPE the ResBlocks are shared by
the reflectance and illumination branches; they are stored once, under
``E_R.*`` (the converter checks and drops PyTorch's duplicate ``E_I.*`` copy).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import layers

Dtype = Any
_SLOPE = 0.1


class ResBlock(nn.Module):
  """conv3x3 → LeakyReLU(0.1) → conv3x3, plus identity (all with bias)."""
  features: int = 64
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype)
    y = layers.Conv2d(self.features, 3, name='body.0', **kw)(x)
    y = layers.Conv2d(self.features, 3, name='body.2', **kw)(
        layers.leaky_relu(y, _SLOPE))
    return x + y


def _trunk(prefix: str, x: jax.Array, res_blocks,
           out_features: int, n_feats: int, kw: dict) -> jax.Array:
  """conv, shared ResBlocks, three convs, GAP → (B, out_features)."""
  n = len(res_blocks)
  conv = lambda f, i: layers.Conv2d(f, 3, use_bias=True, name=f'{prefix}.{i}',
                                    **kw)
  x = layers.leaky_relu(conv(n_feats, 0)(x), _SLOPE)
  for block in res_blocks:
    x = block(x)
  x = layers.leaky_relu(conv(2 * n_feats, n + 2)(x), _SLOPE)
  x = layers.leaky_relu(conv(2 * n_feats, n + 4)(x), _SLOPE)
  x = layers.leaky_relu(conv(out_features, n + 6)(x), _SLOPE)
  return x.mean(axis=(1, 2))


def _mlp(prefix: str, x: jax.Array, features: int, kw: dict) -> jax.Array:
  for i in (0, 2):
    x = layers.leaky_relu(
        layers.Linear(features, name=f'{prefix}.{i}', **kw)(x), _SLOPE)
  return x


class _EncoderFields(nn.Module):
  """Settings shared by PE and RPE (see their docstrings)."""
  input_channels: int = 48
  n_feats: int = 64
  n_encoder_res: int = 5
  normalize: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32


class PriorEncoder(_EncoderFields):
  """PE: image prior from ``lq`` (student) or ``lq`` and ``gt`` (teacher).

  Attributes:
    input_channels: channels after PixelUnshuffle(4): 96 teacher, 48 student.
    n_feats: trunk width (64).
    n_encoder_res: ResBlocks (5 in every reference config).
    normalize: apply ``F.layer_norm`` (no affine) to the output (student).
  """

  @nn.compact
  def __call__(self, lq: jax.Array, gt: jax.Array | None = None,
               return_features: bool = False):
    """Encodes (B, H, W, 3) images into a (B, 256) prior."""
    layers.check_image(lq, 3, 'PriorEncoder lq', multiple=4)
    x = layers.pixel_unshuffle(lq, 4)
    if gt is not None:
      layers.check_image(gt, 3, 'PriorEncoder gt', multiple=4)
      x = jnp.concatenate([x, layers.pixel_unshuffle(gt, 4)], axis=-1)
    if x.shape[-1] != self.input_channels:
      raise ValueError(
          f'PriorEncoder expects {self.input_channels} unshuffled channels '
          f'({self.input_channels // 48} RGB image(s)), got {x.shape[-1]}.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    blocks = [ResBlock(self.n_feats, name=f'E.{i + 2}', **kw)
              for i in range(self.n_encoder_res)]
    feat = _trunk('E', x.astype(self.dtype), blocks, 4 * self.n_feats,
                  self.n_feats, kw)
    z = _mlp('mlp', feat, 4 * self.n_feats, kw)
    if self.normalize:
      z = layers.layer_norm_last(z)
    return (z, feat) if return_features else z


class RetinexPriorEncoder(_EncoderFields):
  """RPE: Retinex prior from ``rex_lq`` (student) or both rex maps (teacher).

  ``rex`` is ``concat(R, L)`` (4 channels). After PixelUnshuffle(4) the first
  48 channels are R and the last 16 are L; the R branch gives 192 dims, the
  L branch 64.

  Attributes:
    input_channels: 128 teacher (two rex maps), 64 student.
  """
  input_channels: int = 64

  @nn.compact
  def __call__(self, rex_lq: jax.Array, rex_gt: jax.Array | None = None):
    """Encodes (B, H, W, 4) Retinex maps into a (B, 256) prior."""
    layers.check_image(rex_lq, 4, 'RetinexPriorEncoder rex_lq', multiple=4)
    x0 = layers.pixel_unshuffle(rex_lq, 4)
    x_r, x_i = x0[..., :48], x0[..., 48:]
    if rex_gt is not None:
      layers.check_image(rex_gt, 4, 'RetinexPriorEncoder rex_gt', multiple=4)
      g0 = layers.pixel_unshuffle(rex_gt, 4)
      x_r = jnp.concatenate([x_r, g0[..., :48]], axis=-1)
      x_i = jnp.concatenate([x_i, g0[..., 48:]], axis=-1)
    if x_r.shape[-1] + x_i.shape[-1] != self.input_channels:
      raise ValueError(
          f'RetinexPriorEncoder expects {self.input_channels} unshuffled '
          f'channels ({self.input_channels // 64} Retinex map(s)), got '
          f'{x_r.shape[-1] + x_i.shape[-1]}.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    shared = [ResBlock(self.n_feats, name=f'E_R.{i + 2}', **kw)
              for i in range(self.n_encoder_res)]
    f = self.n_feats
    fea_r = _trunk('E_R', x_r.astype(self.dtype), shared, 3 * f, f, kw)
    fea_i = _trunk('E_I', x_i.astype(self.dtype), shared, f, f, kw)
    z = jnp.concatenate(
        [_mlp('mlp_R', fea_r, 3 * f, kw), _mlp('mlp_I', fea_i, f, kw)], -1)
    if self.normalize:
      z = layers.layer_norm_last(z)
    return z
