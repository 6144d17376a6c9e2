"""RestoRect composites: Teacher (S1), Student (S2) and Interface (deploy).

Parameter trees mirror the PyTorch state dicts: teacher ``G``, ``E_rex``,
``E_img``; student ``G``, ``img_condition``, ``rex_condition``,
``img_denoise``, ``rex_denoise``. The students also carry the reference's
``{img,rex}_diffusion.timesteps_array`` buffers in the ``buffers`` collection
(unused by sampling, kept so checkpoints round-trip).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.methods.restorect import flow
from restorect_jax.models import layers
from restorect_jax.models.prior_encoders import PriorEncoder
from restorect_jax.models.prior_encoders import RetinexPriorEncoder
from restorect_jax.models.rgformer import PRIOR_DIM
from restorect_jax.models.rgformer import GFields
from restorect_jax.models.rgformer import RGFormer
from restorect_jax.models.velocity import VelocityPredictor

Dtype = Any


class _GConfig(GFields):
  """Fields shared by the composites (G's settings and the encoders')."""
  n_feats: int = 64
  n_encoder_res: int = 5
  remat: bool = False  # nn.remat on G's transformer blocks
  # G's depthwise 3×3 formulation (layers.DEPTHWISE_FORMULATIONS).
  depthwise: str = 'auto'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _kw(self) -> dict:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype)

  def _g(self, decom_head: bool) -> RGFormer:
    return RGFormer(
        dim=self.dim, num_blocks=tuple(self.num_blocks),
        num_refinement_blocks=self.num_refinement_blocks,
        heads=tuple(self.heads),
        ffn_expansion_factor=self.ffn_expansion_factor,
        layer_norm_type=self.layer_norm_type, decom_head=decom_head,
        remat=self.remat, depthwise=self.depthwise, **self._kw())


class Teacher(_GConfig):
  """S1 teacher: GT-privileged encoders + G with the decomposition head."""

  def setup(self):
    enc = dict(n_feats=self.n_feats, n_encoder_res=self.n_encoder_res,
               normalize=False, **self._kw())
    self.G = self._g(decom_head=True)
    self.E_rex = RetinexPriorEncoder(input_channels=2 * 4 * 16, **enc)
    self.E_img = PriorEncoder(input_channels=2 * 3 * 16, **enc)

  def priors(self, lq, gt, rex_lq, rex_gt):
    """Teacher priors ``(z_rex, z_img)``, each (B, 256)."""
    return self.E_rex(rex_lq, rex_gt), self.E_img(lq, gt)

  def __call__(self, lq: jax.Array, gt: jax.Array, rex_lq: jax.Array,
               rex_gt: jax.Array) -> dict[str, jax.Array]:
    """Runs the teacher.

    Args:
      lq, gt: (B, H, W, 3) in [0, 1], H and W multiples of 8.
      rex_lq, rex_gt: (B, H, W, 4) ``concat(R, L)`` of Dl(lq) and Dh(gt).

    Returns:
      dict with ``out``, ``decom_img``, ``decom_mat``, ``z_rex``, ``z_img``.
    """
    z_rex, z_img = self.priors(lq, gt, rex_lq, rex_gt)
    out, decom_img, decom_mat = self.G(lq, z_rex, z_img)
    return dict(out=out, decom_img=decom_img, decom_mat=decom_mat,
                z_rex=z_rex, z_img=z_img)


class _TimeGrid(nn.Module):
  """Holds the reference's unused ``timesteps_array`` buffer."""
  timesteps: int = flow.NUM_TIME_LABELS

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.variable(
        'buffers', 'timesteps_array',
        lambda: jnp.linspace(0.0, 1.0, self.timesteps, dtype=jnp.float32)
    ).value


class Student(_GConfig):
  """S2 student: condition encoders, velocity MLPs and G.

  ``decom_head=True`` is the training network (``RestoRectS2``);
  ``decom_head=False`` is the deployed ``RestoRectS2_Interface``.
  """
  decom_head: bool = True
  timesteps: int = flow.NUM_TIME_LABELS

  def setup(self):
    enc = dict(n_feats=self.n_feats, n_encoder_res=self.n_encoder_res,
               normalize=True, **self._kw())
    self.G = self._g(decom_head=self.decom_head)
    self.img_condition = PriorEncoder(input_channels=3 * 16, **enc)
    self.rex_condition = RetinexPriorEncoder(input_channels=4 * 16, **enc)
    vel = dict(n_feats=self.n_feats, timesteps=self.timesteps, **self._kw())
    self.img_denoise = VelocityPredictor(**vel)
    self.rex_denoise = VelocityPredictor(**vel)
    self.img_diffusion = _TimeGrid(self.timesteps)
    self.rex_diffusion = _TimeGrid(self.timesteps)

  def conditions(self, lq: jax.Array, rex_lq: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """Condition vectors ``(c_rex, c_img)``, each (B, 256), layer-normed."""
    return self.rex_condition(rex_lq), self.img_condition(lq)

  def velocity(self, which: str, x: jax.Array, t_idx: jax.Array,
               c: jax.Array) -> jax.Array:
    """Velocity of the ``'rex'`` or ``'img'`` flow at states ``x``."""
    net = {'rex': self.rex_denoise, 'img': self.img_denoise}[which]
    return net(x, t_idx, c)

  def restore_with_priors(self, lq: jax.Array, z_rex: jax.Array,
                          z_img: jax.Array):
    """G alone, with given priors (training uses the sampled ones)."""
    return self.G(lq, z_rex, z_img)

  def sample_priors(self, lq: jax.Array, rex_lq: jax.Array,
                    noise_rex: jax.Array, noise_img: jax.Array,
                    num_steps: int | jax.Array = 5
                    ) -> tuple[jax.Array, jax.Array]:
    """Euler-samples ``(z_rex, z_img)`` from the given noise.

    Args:
      lq: (B, H, W, 3) degraded image.
      rex_lq: (B, H, W, 4) ``concat(R, L)`` of Dl(lq).
      noise_rex, noise_img: (B, 256) starting noise (the reference draws
        rex first, then img).
      num_steps: Euler steps N (reference default 5): a Python int
        (unrolled) or an int32 scalar array, traced under ``jit`` so one
        program serves every N (see :func:`flow.euler_sample`).

    Returns:
      The sampled priors, each (B, 256).
    """
    b = lq.shape[0]
    layers.check_prior(noise_rex, b, PRIOR_DIM, 'noise_rex')
    layers.check_prior(noise_img, b, PRIOR_DIM, 'noise_img')
    if self.is_initializing():  # create the (unused) buffers once
      self.img_diffusion()
      self.rex_diffusion()
    c_rex, c_img = self.conditions(lq, rex_lq)
    return self.sample_from_conditions(c_rex, c_img, noise_rex, noise_img,
                                       num_steps)

  def sample_from_conditions(self, c_rex: jax.Array, c_img: jax.Array,
                             noise_rex: jax.Array, noise_img: jax.Array,
                             num_steps: int | jax.Array = 5
                             ) -> tuple[jax.Array, jax.Array]:
    """The Euler loops of :meth:`sample_priors` for given conditions.

    ``num_steps`` is a Python int or an int32 scalar array (traced: a
    ``lax.fori_loop``, forward only).
    """
    if self.is_initializing():
      # Create the velocity nets' parameters outside the (possibly traced)
      # loop, where Flax cannot create them.
      t0 = jnp.zeros((noise_rex.shape[0],), jnp.int32)
      self.rex_denoise(noise_rex, t0, c_rex)
      self.img_denoise(noise_img, t0, c_img)
    z_rex = flow.euler_sample(
        lambda x, t: self.rex_denoise(x, t, c_rex), noise_rex, num_steps,
        self.timesteps)
    z_img = flow.euler_sample(
        lambda x, t: self.img_denoise(x, t, c_img), noise_img, num_steps,
        self.timesteps)
    return z_rex, z_img

  def __call__(self, lq: jax.Array, rex_lq: jax.Array, noise_rex: jax.Array,
               noise_img: jax.Array, num_steps: int | jax.Array = 5):
    """Samples the priors and restores ``lq`` (H, W multiples of 8).

    ``num_steps`` as in :meth:`sample_priors` (int or int32 scalar array).

    Returns:
      ``out`` (B, H, W, 3) for the Interface; for the training student a
      dict with ``out``, ``decom_img``, ``decom_mat``, ``z_rex``, ``z_img``.
    """
    z_rex, z_img = self.sample_priors(lq, rex_lq, noise_rex, noise_img,
                                      num_steps)
    if not self.decom_head:
      return self.G(lq, z_rex, z_img)
    out, decom_img, decom_mat = self.G(lq, z_rex, z_img)
    return dict(out=out, decom_img=decom_img, decom_mat=decom_mat,
                z_rex=z_rex, z_img=z_img)


def Interface(**kwargs) -> Student:  # pylint: disable=invalid-name
  """The deployed student (``RestoRectS2_Interface``): no decomposition head."""
  return Student(decom_head=False, **kwargs)
