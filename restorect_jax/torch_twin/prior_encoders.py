"""PyTorch twins of the prior encoders PE and RPE (spec restorect.md §2.2).

Sequential indices follow the reference: with ``n = n_encoder_res`` the first
conv is ``E.0``, the ResBlocks ``E.2 … E.{n+1}`` and the next convs
``E.{n+2}``, ``E.{n+4}``, ``E.{n+6}``. The RPE's ResBlocks are the same
module objects in both branches, so the state dict stores them under
``E_R.k.*`` and ``E_I.k.*`` as the reference does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from restorect_jax.torch_twin import layers

_SLOPE = 0.1


class ResBlock(nn.Module):
  """conv3x3 → LeakyReLU(0.1) → conv3x3, plus identity (all with bias)."""

  def __init__(self, features: int = 64):
    super().__init__()
    self.body = nn.Sequential(
        layers.conv3x3(features, features), nn.LeakyReLU(_SLOPE),
        layers.conv3x3(features, features))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x + self.body(x)


def _trunk(cin: int, res_blocks: list[nn.Module], out_features: int,
           n_feats: int) -> nn.Sequential:
  """conv, ResBlocks, three convs (LeakyReLU 0.1 after each), GAP."""
  lrelu = lambda: nn.LeakyReLU(_SLOPE)
  return nn.Sequential(
      layers.conv3x3(cin, n_feats), lrelu(), *res_blocks,
      layers.conv3x3(n_feats, 2 * n_feats), lrelu(),
      layers.conv3x3(2 * n_feats, 2 * n_feats), lrelu(),
      layers.conv3x3(2 * n_feats, out_features), lrelu(),
      nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _mlp(features: int) -> nn.Sequential:
  return nn.Sequential(
      nn.Linear(features, features), nn.LeakyReLU(_SLOPE),
      nn.Linear(features, features), nn.LeakyReLU(_SLOPE))


class PriorEncoder(nn.Module):
  """PE: image prior from ``lq`` (student) or ``lq`` and ``gt`` (teacher).

  Args:
    input_channels: channels after PixelUnshuffle(4): 96 teacher, 48 student.
    n_feats: trunk width (64).
    n_encoder_res: ResBlocks.
    normalize: ``F.layer_norm`` (no affine) on the output (student).
  """

  def __init__(self, input_channels: int = 48, n_feats: int = 64,
               n_encoder_res: int = 5, normalize: bool = True):
    super().__init__()
    self.input_channels = input_channels
    self.normalize = normalize
    blocks = [ResBlock(n_feats) for _ in range(n_encoder_res)]
    self.E = _trunk(input_channels, blocks, 4 * n_feats, n_feats)
    self.mlp = _mlp(4 * n_feats)

  def forward(self, lq: torch.Tensor, gt: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Encodes (B, 3, H, W) images (H, W multiples of 4) into (B, 256)."""
    layers.check_image(lq, 3, 'PriorEncoder lq', multiple=4)
    x = F.pixel_unshuffle(lq, 4)
    if gt is not None:
      layers.check_image(gt, 3, 'PriorEncoder gt', multiple=4)
      x = torch.cat([x, F.pixel_unshuffle(gt, 4)], dim=1)
    if x.shape[1] != self.input_channels:
      raise ValueError(
          f'PriorEncoder expects {self.input_channels} unshuffled channels '
          f'({self.input_channels // 48} RGB image(s)), got {x.shape[1]}.')
    z = self.mlp(self.E(x))
    if self.normalize:
      z = F.layer_norm(z, z.shape[-1:])
    return z


class RetinexPriorEncoder(nn.Module):
  """RPE: Retinex prior from ``rex_lq`` (student) or both rex maps (teacher).

  After PixelUnshuffle(4) the first 48 channels of each rex map are R and
  the last 16 are L; the R branch gives 192 dims, the L branch 64.

  Args:
    input_channels: 128 teacher (two rex maps), 64 student.
    n_feats: trunk width (64).
    n_encoder_res: ResBlocks shared by both branches.
    normalize: ``F.layer_norm`` (no affine) on the output (student).
  """

  def __init__(self, input_channels: int = 64, n_feats: int = 64,
               n_encoder_res: int = 5, normalize: bool = True):
    super().__init__()
    self.input_channels = input_channels
    self.normalize = normalize
    shared = [ResBlock(n_feats) for _ in range(n_encoder_res)]
    self.E_R = _trunk(3 * input_channels // 4, shared, 3 * n_feats, n_feats)
    self.E_I = _trunk(input_channels // 4, shared, n_feats, n_feats)
    self.mlp_R = _mlp(3 * n_feats)
    self.mlp_I = _mlp(n_feats)

  def forward(self, rex_lq: torch.Tensor, rex_gt: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Encodes (B, 4, H, W) ``cat(R, L)`` maps into a (B, 256) prior."""
    layers.check_image(rex_lq, 4, 'RetinexPriorEncoder rex_lq', multiple=4)
    x0 = F.pixel_unshuffle(rex_lq, 4)
    x_r, x_i = x0[:, :48], x0[:, 48:]
    if rex_gt is not None:
      layers.check_image(rex_gt, 4, 'RetinexPriorEncoder rex_gt', multiple=4)
      g0 = F.pixel_unshuffle(rex_gt, 4)
      x_r = torch.cat([x_r, g0[:, :48]], dim=1)
      x_i = torch.cat([x_i, g0[:, 48:]], dim=1)
    if x_r.shape[1] + x_i.shape[1] != self.input_channels:
      raise ValueError(
          f'RetinexPriorEncoder expects {self.input_channels} unshuffled '
          f'channels ({self.input_channels // 64} Retinex map(s)), got '
          f'{x_r.shape[1] + x_i.shape[1]}.')
    z = torch.cat([self.mlp_R(self.E_R(x_r)), self.mlp_I(self.E_I(x_i))],
                  dim=1)
    if self.normalize:
      z = F.layer_norm(z, z.shape[-1:])
    return z
