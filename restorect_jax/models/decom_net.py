"""The Retinex DecomNet (spec §2.1), frozen in every RestoRect stage."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import layers

Dtype = Any
ANISO_S_INIT = 0.1


class DecomNet(nn.Module):
  """conv3x3 3→32→32→32→4 (LeakyReLU 0.2, final ReLU): ``R, L``.

  Besides the convs (``decom.{0,2,4,6}``) it owns the anisotropic-diffusion
  scale ``anisotropic_diffusion.s`` (init 0.1) used only by the DecomNet side
  losses; the published checkpoints do not contain it.
  """
  width: int = 32
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, img: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Decomposes (B, H, W, 3) in [0, 1] into R (B, H, W, 3), L (B, H, W, 1)."""
    layers.check_image(img, 3, 'DecomNet input')
    kw = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype)
    x = img.astype(self.dtype)
    for i in (0, 2, 4):
      x = layers.leaky_relu(
          layers.Conv2d(self.width, 3, name=f'decom.{i}', **kw)(x), 0.2)
    y = jax.nn.relu(layers.Conv2d(4, 3, name='decom.6', **kw)(x))
    # A leaf named like the PyTorch key so the converter maps it 1:1.
    self.param('anisotropic_diffusion.s', nn.initializers.constant(ANISO_S_INIT),
               (), self.param_dtype)
    return y[..., :3], y[..., 3:4]
