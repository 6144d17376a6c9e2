"""Shared PyTorch primitives of the twins (NCHW, reference state-dict names).

Every module here owns exactly the parameters the reference module owns,
under the same attribute names, so ``module.state_dict()`` keys equal the
reference's keys and :func:`restorect_jax.convert.flax_to_torch` output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PRIOR_DIM = 256
PRIOR_R_DIM = 192  # first 192 dims of z_rex drive reflectance, last 64 light


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
  """3×3 convolution with zero padding 1."""
  return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


def conv1x1(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
  """1×1 convolution."""
  return nn.Conv2d(cin, cout, 1, bias=bias)


def dwconv3x3(channels: int) -> nn.Conv2d:
  """Bias-free depthwise 3×3 convolution (weight (C, 1, 3, 3))."""
  return nn.Conv2d(channels, channels, 3, padding=1, groups=channels,
                   bias=False)


def modulate(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
  """Channel-wise prior modulation ``x ⊙ (1 + w)``.

  Args:
    x: (B, C, H, W).
    w: (B, C), the projected prior ``W z``.

  Returns:
    (B, C, H, W).
  """
  return x * (1.0 + w[:, :, None, None])


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int
                            ) -> tuple[torch.Tensor, tuple[int, int]]:
  """Reflect-pads (B, C, H, W) on the bottom/right to a multiple.

  Returns:
    The padded tensor and the original (H, W).
  """
  h, w = x.shape[-2:]
  ph, pw = (-h) % multiple, (-w) % multiple
  if ph >= h or pw >= w:
    raise ValueError(
        f'Image {h}x{w} is too small to reflect-pad to a multiple of '
        f'{multiple}.')
  if ph or pw:
    x = F.pad(x, (0, pw, 0, ph), mode='reflect')
  return x, (h, w)


def check_image(x: torch.Tensor, channels: int, what: str,
                multiple: int | None = None) -> None:
  """Raises ValueError unless ``x`` is (B, channels, H, W) [H, W % multiple]."""
  shape = tuple(x.shape)
  if x.dim() != 4 or shape[1] != channels:
    raise ValueError(
        f'{what}: expected an NCHW tensor (B, {channels}, H, W), got shape '
        f'{shape}.')
  if multiple and (shape[2] % multiple or shape[3] % multiple):
    raise ValueError(
        f'{what}: H and W must be multiples of {multiple} (reflect-pad '
        f'first, e.g. with torch_twin.restore_with_noise), got '
        f'{shape[2]}x{shape[3]}.')


def check_prior(z: torch.Tensor, batch: int, what: str,
                dim: int = PRIOR_DIM) -> None:
  """Raises ValueError unless ``z`` is (batch, dim)."""
  if tuple(z.shape) != (batch, dim):
    raise ValueError(
        f'{what}: expected a prior of shape ({batch}, {dim}), got '
        f'{tuple(z.shape)}.')


class SCLNBody(nn.Module):
  """Spatial Channel LayerNorm as the reference implements it (spec §2.5).

  Per sample over (C, H, W): population variance floored at 1e-5, divided
  by ``sqrt(var + 1e-5)`` (eps used twice), NaN → 0, clamp to [-10, 10],
  per-channel ``weight``, no bias.
  """

  def __init__(self, channels: int):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(channels))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    var, mu = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)
    y = (x - mu) / torch.sqrt(var.clamp_min(1e-5) + 1e-5)
    y = torch.nan_to_num(y, nan=0.0).clamp(-10.0, 10.0)
    return y * self.weight[:, None, None]


class WithBiasBody(nn.Module):
  """Restormer's per-pixel LayerNorm over channels (weight, bias, eps 1e-5)."""

  def __init__(self, channels: int):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(channels))
    self.bias = nn.Parameter(torch.zeros(channels))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    var, mu = torch.var_mean(x, dim=1, keepdim=True, correction=0)
    y = (x - mu) / torch.sqrt(var + 1e-5)
    return y * self.weight[:, None, None] + self.bias[:, None, None]


LAYER_NORM_TYPES = ('SpatialChannel', 'WithBias')


class Norm(nn.Module):
  """The block norm, parameters under ``body`` (``norm1.body.weight``)."""

  def __init__(self, channels: int, layer_norm_type: str = 'SpatialChannel'):
    super().__init__()
    if layer_norm_type == 'SpatialChannel':
      self.body = SCLNBody(channels)
    elif layer_norm_type == 'WithBias':
      self.body = WithBiasBody(channels)
    else:
      raise ValueError(
          f'layer_norm_type must be one of {LAYER_NORM_TYPES}, got '
          f'{layer_norm_type!r}.')

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.body(x)
