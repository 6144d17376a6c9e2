"""PyTorch twin of the Retinex DecomNet (spec restorect.md §2.1, §2.8)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from restorect_jax.torch_twin import layers

ANISO_S_INIT = 0.1
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


class AnisotropicDiffusion(nn.Module):
  """The anisotropic-diffusion operator ``A(img)`` with its scale ``s``.

  Per channel: Sobel ``gx``, ``gy`` (zero padding 1), ``|∇| = sqrt(gx² + gy²
  + 1e-8)``, ``c = exp(clamp(-(|∇|/s)², -10, 0))`` with ``s`` clamped to
  [0.01, 1], then a 3×3 box mean of ``c·gx + c·gy`` (zero padding). Used
  only by the DecomNet side losses; the published checkpoints lack ``s``.
  """

  def __init__(self):
    super().__init__()
    self.s = nn.Parameter(torch.tensor(ANISO_S_INIT))

  def forward(self, img: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H, W)."""
    c = img.shape[1]
    kx = torch.tensor(_SOBEL_X, dtype=img.dtype, device=img.device)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(c, 1, 1, 1)
    g = F.conv2d(img, kernels, padding=1, groups=c)  # (B, 2C, H, W)
    gx, gy = g[:, 0::2], g[:, 1::2]
    mag = torch.sqrt(gx * gx + gy * gy + 1e-8)
    s = self.s.clamp(0.01, 1.0)
    cond = torch.exp(torch.clamp(-(mag / s) ** 2, -10.0, 0.0))
    return F.avg_pool2d(cond * gx + cond * gy, 3, stride=1, padding=1,
                        count_include_pad=True)


class DecomNet(nn.Module):
  """conv3x3 3→32→32→32→4 (LeakyReLU 0.2, final ReLU): ``R, L``.

  Keys ``decom.{0,2,4,6}.{weight,bias}`` and ``anisotropic_diffusion.s``.
  """

  def __init__(self, width: int = 32):
    super().__init__()
    self.decom = nn.Sequential(
        layers.conv3x3(3, width), nn.LeakyReLU(0.2),
        layers.conv3x3(width, width), nn.LeakyReLU(0.2),
        layers.conv3x3(width, width), nn.LeakyReLU(0.2),
        layers.conv3x3(width, 4), nn.ReLU())
    self.anisotropic_diffusion = AnisotropicDiffusion()

  def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decomposes an image.

    Args:
      img: (B, 3, H, W) in [0, 1].

    Returns:
      ``R`` (B, 3, H, W) and ``L`` (B, 1, H, W).
    """
    layers.check_image(img, 3, 'DecomNet input')
    y = self.decom(img)
    return y[:, :3], y[:, 3:4]
