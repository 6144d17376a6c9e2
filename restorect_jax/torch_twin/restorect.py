"""PyTorch twins of the RestoRect composites: Teacher, Student, Interface.

Attribute names are the reference's: teacher ``G``, ``E_rex``, ``E_img``;
student ``G``, ``img_condition``, ``rex_condition``, ``img_denoise``,
``rex_denoise`` plus the ``img_diffusion`` / ``rex_diffusion`` holders (which
alias the condition and velocity nets and own the ``timesteps_array``
buffers). Forward arguments and outputs mirror the Flax modules of
``restorect_jax.models.restorect`` with images NCHW.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from restorect_jax.torch_twin import layers
from restorect_jax.torch_twin.prior_encoders import PriorEncoder
from restorect_jax.torch_twin.prior_encoders import RetinexPriorEncoder
from restorect_jax.torch_twin.rgformer import RGFormer
from restorect_jax.torch_twin.velocity import NUM_TIME_LABELS
from restorect_jax.torch_twin.velocity import RectifiedFlow
from restorect_jax.torch_twin.velocity import VelocityPredictor
from restorect_jax.torch_twin.velocity import euler_sample


def _g(dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor,
       layer_norm_type, decom_head) -> RGFormer:
  return RGFormer(dim, num_blocks, num_refinement_blocks, heads,
                  ffn_expansion_factor, layer_norm_type, decom_head)


class Teacher(nn.Module):
  """S1 teacher: GT-privileged encoders + G with the decomposition head.

  Args are those of ``restorect_jax.models.Teacher`` (variant table in
  ``restorect_jax.models.VARIANTS``).
  """

  def __init__(self, dim: int = 64, num_blocks: Sequence[int] = (3, 3, 3, 3),
               num_refinement_blocks: int = 3,
               heads: Sequence[int] = (1, 2, 4, 8),
               ffn_expansion_factor: float = 2.66,
               layer_norm_type: str = 'SpatialChannel', n_feats: int = 64,
               n_encoder_res: int = 5):
    super().__init__()
    self.G = _g(dim, num_blocks, num_refinement_blocks, heads,
                ffn_expansion_factor, layer_norm_type, decom_head=True)
    enc = dict(n_feats=n_feats, n_encoder_res=n_encoder_res, normalize=False)
    self.E_rex = RetinexPriorEncoder(input_channels=2 * 4 * 16, **enc)
    self.E_img = PriorEncoder(input_channels=2 * 3 * 16, **enc)

  def priors(self, lq: torch.Tensor, gt: torch.Tensor, rex_lq: torch.Tensor,
             rex_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher priors ``(z_rex, z_img)``, each (B, 256)."""
    return self.E_rex(rex_lq, rex_gt), self.E_img(lq, gt)

  def forward(self, lq: torch.Tensor, gt: torch.Tensor, rex_lq: torch.Tensor,
              rex_gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Runs the teacher.

    Args:
      lq, gt: (B, 3, H, W) in [0, 1], H and W multiples of 8.
      rex_lq, rex_gt: (B, 4, H, W) ``cat(R, L)`` of Dl(lq) and Dh(gt).

    Returns:
      dict with ``out`` (B, 3, H, W), ``decom_img`` (B, 3, H, W),
      ``decom_mat`` (B, 4, H, W), ``z_rex`` and ``z_img`` (B, 256).
    """
    z_rex, z_img = self.priors(lq, gt, rex_lq, rex_gt)
    out, decom_img, decom_mat = self.G(lq, z_rex, z_img)
    return dict(out=out, decom_img=decom_img, decom_mat=decom_mat,
                z_rex=z_rex, z_img=z_img)


class Student(nn.Module):
  """S2 student: condition encoders, velocity MLPs and G.

  ``decom_head=True`` is the training network (``RestoRectS2``),
  ``decom_head=False`` the deployed one (see :class:`Interface`). The prior
  sampler runs without gradient by default, as the reference's
  ``inference_generation`` does.
  """

  def __init__(self, dim: int = 64, num_blocks: Sequence[int] = (3, 3, 3, 3),
               num_refinement_blocks: int = 3,
               heads: Sequence[int] = (1, 2, 4, 8),
               ffn_expansion_factor: float = 2.66,
               layer_norm_type: str = 'SpatialChannel', n_feats: int = 64,
               n_encoder_res: int = 5, decom_head: bool = True,
               timesteps: int = NUM_TIME_LABELS):
    super().__init__()
    self.decom_head = decom_head
    self.timesteps = timesteps
    self.G = _g(dim, num_blocks, num_refinement_blocks, heads,
                ffn_expansion_factor, layer_norm_type, decom_head)
    enc = dict(n_feats=n_feats, n_encoder_res=n_encoder_res, normalize=True)
    self.img_condition = PriorEncoder(input_channels=3 * 16, **enc)
    self.rex_condition = RetinexPriorEncoder(input_channels=4 * 16, **enc)
    self.img_denoise = VelocityPredictor(n_feats, timesteps)
    self.rex_denoise = VelocityPredictor(n_feats, timesteps)
    self.img_diffusion = RectifiedFlow(self.img_denoise, self.img_condition,
                                       timesteps)
    self.rex_diffusion = RectifiedFlow(self.rex_denoise, self.rex_condition,
                                       timesteps)

  def conditions(self, lq: torch.Tensor, rex_lq: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition vectors ``(c_rex, c_img)``, each (B, 256), layer-normed.

    Args:
      lq: (B, 3, H, W) degraded image, H and W multiples of 4.
      rex_lq: (B, 4, H, W) ``cat(R, L)`` of Dl(lq).
    """
    return self.rex_condition(rex_lq), self.img_condition(lq)

  def velocity(self, which: str, x: torch.Tensor, t_idx: torch.Tensor,
               c: torch.Tensor) -> torch.Tensor:
    """Velocity (B, 256) of the ``'rex'`` or ``'img'`` flow at ``x``."""
    net = {'rex': self.rex_denoise, 'img': self.img_denoise}[which]
    return net(x, t_idx, c)

  def restore_with_priors(self, lq: torch.Tensor, z_rex: torch.Tensor,
                          z_img: torch.Tensor):
    """G alone with given (B, 256) priors; see :meth:`RGFormer.forward`."""
    return self.G(lq, z_rex, z_img)

  def sample_from_conditions(self, c_rex: torch.Tensor, c_img: torch.Tensor,
                             noise_rex: torch.Tensor, noise_img: torch.Tensor,
                             num_steps: int = 5, *, grad: bool = False
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler-samples ``(z_rex, z_img)``, each (B, 256), for conditions.

    Args:
      c_rex, c_img: (B, 256) conditions.
      noise_rex, noise_img: (B, 256) starting noise.
      num_steps: Euler steps N.
      grad: keep the graph (the paper reading); the reference samples
        under ``torch.no_grad`` (default).
    """
    b = c_rex.shape[0]
    layers.check_prior(noise_rex, b, 'noise_rex')
    layers.check_prior(noise_img, b, 'noise_img')
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
      z_rex = euler_sample(lambda x, t: self.rex_denoise(x, t, c_rex),
                           noise_rex, num_steps, self.timesteps)
      z_img = euler_sample(lambda x, t: self.img_denoise(x, t, c_img),
                           noise_img, num_steps, self.timesteps)
    return z_rex, z_img

  def sample_priors(self, lq: torch.Tensor, rex_lq: torch.Tensor,
                    noise_rex: torch.Tensor, noise_img: torch.Tensor,
                    num_steps: int = 5, *, grad: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditions, then the two Euler loops (rex first, then img).

    Args:
      lq: (B, 3, H, W) degraded image.
      rex_lq: (B, 4, H, W) ``cat(R, L)`` of Dl(lq).
      noise_rex, noise_img: (B, 256) starting noise.
      num_steps: Euler steps N (reference default 5).
      grad: see :meth:`sample_from_conditions`.

    Returns:
      The sampled priors, each (B, 256).
    """
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
      c_rex, c_img = self.conditions(lq, rex_lq)
    return self.sample_from_conditions(c_rex, c_img, noise_rex, noise_img,
                                       num_steps, grad=grad)

  def forward(self, lq: torch.Tensor, rex_lq: torch.Tensor,
              noise_rex: torch.Tensor, noise_img: torch.Tensor,
              num_steps: int = 5):
    """Samples the priors (no gradient) and restores ``lq``.

    Args:
      lq: (B, 3, H, W) in [0, 1], H and W multiples of 8.
      rex_lq: (B, 4, H, W) ``cat(R, L)`` of Dl(lq).
      noise_rex, noise_img: (B, 256) starting noise (reference draws rex
        first, then img).
      num_steps: Euler steps N.

    Returns:
      ``out`` (B, 3, H, W) for the Interface; for the training student a
      dict with ``out``, ``decom_img``, ``decom_mat``, ``z_rex``, ``z_img``.
    """
    z_rex, z_img = self.sample_priors(lq, rex_lq, noise_rex, noise_img,
                                      num_steps)
    if not self.decom_head:
      return self.G(lq, z_rex, z_img)
    out, decom_img, decom_mat = self.G(lq, z_rex, z_img)
    return dict(out=out, decom_img=decom_img, decom_mat=decom_mat,
                z_rex=z_rex, z_img=z_img)


class Interface(Student):
  """The deployed student (``RestoRectS2_Interface``): no decomposition head.

  ``forward(lq, rex_lq, noise_rex, noise_img, num_steps=5)`` → (B, 3, H, W).
  """

  def __init__(self, **kwargs):
    if kwargs.pop('decom_head', False):
      raise ValueError('Interface has no decomposition head; use Student.')
    super().__init__(decom_head=False, **kwargs)
