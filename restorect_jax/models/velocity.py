"""VelocityPredictor: the rectified-flow MLP on the 256-d priors (§2.6)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import layers

Dtype = Any


class VelocityPredictor(nn.Module):
  """``v = LReLU(L2(LReLU(L1(cat[c, t_idx / (10 T), x]))))``, slope 0.1.

  The "ResMLP" has no residual connection and the output passes through the
  LeakyReLU, as in the reference. Time is the raw integer label divided by
  ``10 * timesteps`` (no sinusoidal embedding).
  """
  n_feats: int = 64
  timesteps: int = 4
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, t_idx: jax.Array, c: jax.Array) -> jax.Array:
    """Predicts the velocity.

    Args:
      x: (B, 4 n_feats) state.
      t_idx: (B,) integer time labels in [0, timesteps - 1] (or float t·3).
      c: (B, 4 n_feats) condition.

    Returns:
      (B, 4 n_feats) velocity.
    """
    dim = 4 * self.n_feats
    layers.check_prior(x, x.shape[0], dim, 'VelocityPredictor x')
    layers.check_prior(c, x.shape[0], dim, 'VelocityPredictor c')
    t_in = jnp.asarray(t_idx, self.dtype).reshape(-1, 1)
    t_in = jnp.broadcast_to(t_in / (10.0 * self.timesteps), (x.shape[0], 1))
    h = jnp.concatenate(
        [c.astype(self.dtype), t_in, x.astype(self.dtype)], axis=-1)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = layers.leaky_relu(layers.Linear(dim, name='resmlp.0', **kw)(h), 0.1)
    h = layers.Linear(dim, name='resmlp.2.resmlp.0', **kw)(h)
    return layers.leaky_relu(h, 0.1)
