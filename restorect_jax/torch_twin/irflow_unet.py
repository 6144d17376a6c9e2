"""PyTorch twin of IR-Flow's ConditionalUNet and time-free UNet.

Spec ``shared/spec/irflow.md`` §4.1–§4.2, §10, §12 (width-dependent sizes).
A four-level U-Net (widths ``nf·2^i``, middle ``16·nf``) of time-modulated
ResBlocks and linear-attention blocks that predicts the cumulative velocity
directly. The input is reflect-padded on the bottom/right to a multiple of
``2**depth`` and the output cropped back. Module attributes follow the
reference, so keys read ``downs.0.2.fn.fn.to_qkv.weight``, ``ups.0.3.1.bias``,
``time_mlp.1.weight`` and the gain-only LayerNorm gains ``g`` are
(1, C, 1, 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from restorect_jax.torch_twin import layers

HEADS = 4
DIM_HEAD = 32  # inner width HEADS * DIM_HEAD = 128 for every nf


class SinusoidalPosEmb(nn.Module):
  """``[sin(k·f), cos(k·f)]``, ``f_j = exp(-j·ln(10000)/(half - 1))``."""

  def __init__(self, dim: int):
    super().__init__()
    self.dim = dim

  def forward(self, k: torch.Tensor) -> torch.Tensor:
    """(N,) raw integer times → (N, dim) float32."""
    half = self.dim // 2
    scale = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=k.device) * -scale)
    args = k.float()[:, None] * freqs[None, :]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class ChannelLayerNorm(nn.Module):
  """Gain-only LayerNorm over channels (biased variance, eps 1e-5 in fp32)."""

  def __init__(self, dim: int):
    super().__init__()
    self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    eps = 1e-5 if x.dtype == torch.float32 else 1e-3
    var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(var + eps) * self.g


class LinearAttention(nn.Module):
  """Linear attention, 4 heads × 32: q softmax over channels, k over pixels."""

  def __init__(self, dim: int):
    super().__init__()
    self.to_qkv = nn.Conv2d(dim, 3 * HEADS * DIM_HEAD, 1, bias=False)
    self.to_out = nn.Sequential(nn.Conv2d(HEADS * DIM_HEAD, dim, 1),
                                ChannelLayerNorm(dim))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    n = h * w
    q, k, v = self.to_qkv(x).reshape(b, 3, HEADS, DIM_HEAD, n).unbind(1)
    q = q.softmax(dim=-2) * (DIM_HEAD ** -0.5)
    k = k.softmax(dim=-1)
    v = v / n
    context = k @ v.transpose(-1, -2)  # (B, heads, d, e)
    out = context.transpose(-1, -2) @ q  # (B, heads, e, n)
    return self.to_out(out.reshape(b, HEADS * DIM_HEAD, h, w))


class PreNorm(nn.Module):
  """``fn(norm(x))``."""

  def __init__(self, dim: int, fn: nn.Module):
    super().__init__()
    self.fn = fn
    self.norm = ChannelLayerNorm(dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.fn(self.norm(x))


class Residual(nn.Module):
  """``fn(x) + x``."""

  def __init__(self, fn: nn.Module):
    super().__init__()
    self.fn = fn

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.fn(x) + x


def _attention_block(dim: int) -> Residual:
  return Residual(PreNorm(dim, LinearAttention(dim)))


class Block(nn.Module):
  """``proj`` (bias-free conv3x3), optional scale-shift, SiLU."""

  def __init__(self, dim: int, dim_out: int):
    super().__init__()
    self.proj = nn.Conv2d(dim, dim_out, 3, padding=1, bias=False)

  def forward(self, x: torch.Tensor,
              scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> torch.Tensor:
    x = self.proj(x)
    if scale_shift is not None:
      scale, shift = scale_shift
      x = x * (scale + 1) + shift
    return F.silu(x)


class ResBlock(nn.Module):
  """Two Blocks; time scale-then-shift after the first; 1×1 skip if needed.

  Args:
    dim: input channels.
    dim_out: output channels (bias-free 1×1 ``res_conv`` when different).
    time_emb_dim: width of the time embedding, or None (time-free UNet).
  """

  def __init__(self, dim: int, dim_out: int, time_emb_dim: int | None):
    super().__init__()
    self.mlp = None if time_emb_dim is None else nn.Sequential(
        nn.SiLU(), nn.Linear(time_emb_dim, 2 * dim_out))
    self.block1 = Block(dim, dim_out)
    self.block2 = Block(dim_out, dim_out)
    self.res_conv = (nn.Conv2d(dim, dim_out, 1, bias=False)
                     if dim != dim_out else nn.Identity())

  def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None
              ) -> torch.Tensor:
    scale_shift = None
    if self.mlp is not None:
      scale_shift = self.mlp(temb)[:, :, None, None].chunk(2, dim=1)
    return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


def _time_tensor(k: Any, batch: int, device: torch.device) -> torch.Tensor:
  """The time as a (N,) tensor, N in {1, batch}."""
  k = torch.as_tensor(k, device=device)
  if k.dim() == 0:
    k = k[None]
  if k.dim() != 1 or k.shape[0] not in (1, batch):
    raise ValueError(
        f'The time k must be a scalar, shape (1,) or shape ({batch},), got '
        f'shape {tuple(k.shape)}.')
  return k


class _IRFlowUNet(nn.Module):
  """The graph shared by :class:`ConditionalUNet` and :class:`UNet`."""

  conditional = True

  def __init__(self, nf: int = 64, depth: int = 4, in_nc: int = 3,
               out_nc: int = 3):
    super().__init__()
    if nf < 4 or nf % 2:
      raise ValueError(f'nf must be even and at least 4, got {nf}.')
    if depth < 1:
      raise ValueError(f'depth must be at least 1, got {depth}.')
    self.depth, self.in_nc = depth, in_nc
    temb_dim = 4 * nf if self.conditional else None
    if self.conditional:
      self.time_mlp = nn.Sequential(
          SinusoidalPosEmb(nf), nn.Linear(nf, 4 * nf), nn.GELU(),
          nn.Linear(4 * nf, 4 * nf))
    dims = [nf * 2 ** i for i in range(depth + 1)]
    self.init_conv = nn.Conv2d(in_nc, nf, 7, padding=3, bias=False)
    self.downs = nn.ModuleList()
    for i in range(depth):
      down = (nn.Conv2d(dims[i], dims[i + 1], 4, stride=2, padding=1)
              if i < depth - 1 else
              nn.Conv2d(dims[i], dims[i + 1], 3, padding=1, bias=False))
      self.downs.append(nn.ModuleList([
          ResBlock(dims[i], dims[i], temb_dim),
          ResBlock(dims[i], dims[i], temb_dim),
          _attention_block(dims[i]), down]))
    self.mid_block1 = ResBlock(dims[-1], dims[-1], temb_dim)
    self.mid_attn = _attention_block(dims[-1])
    self.mid_block2 = ResBlock(dims[-1], dims[-1], temb_dim)
    self.ups = nn.ModuleList()
    for i in reversed(range(depth)):
      d_out, d_in = dims[i + 1], dims[i]
      up = (nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'),
                          nn.Conv2d(d_out, d_in, 3, padding=1))
            if i > 0 else nn.Conv2d(d_out, d_in, 3, padding=1, bias=False))
      self.ups.append(nn.ModuleList([
          ResBlock(d_out + d_in, d_out, temb_dim),
          ResBlock(d_out + d_in, d_out, temb_dim),
          _attention_block(d_out), up]))
    self.final_res_block = ResBlock(2 * nf, nf, temb_dim)
    self.final_conv = nn.Conv2d(nf, out_nc, 3, padding=1)

  def _net(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
    layers.check_image(x, self.in_nc, type(self).__name__)
    x, (h, w) = layers.reflect_pad_to_multiple(x, 2 ** self.depth)
    x = self.init_conv(x)
    x_init = x
    skips = []
    for res1, res2, attn, down in self.downs:
      x = res1(x, temb)
      skips.append(x)
      x = attn(res2(x, temb))
      skips.append(x)
      x = down(x)
    x = self.mid_block2(self.mid_attn(self.mid_block1(x, temb)), temb)
    for res1, res2, attn, up in self.ups:
      x = res1(torch.cat([x, skips.pop()], dim=1), temb)
      x = res2(torch.cat([x, skips.pop()], dim=1), temb)
      x = up(attn(x))
    x = self.final_res_block(torch.cat([x, x_init], dim=1), temb)
    return self.final_conv(x)[:, :, :h, :w]


class ConditionalUNet(_IRFlowUNet):
  """IR-Flow's time-conditioned U-Net ``f(x_t, k)`` (spec §4.1).

  Args:
    nf: base width (levels ``nf·2^i``, middle ``16·nf``).
    depth: levels; the input is padded to a multiple of ``2**depth``.
    in_nc, out_nc: image channels.
  """

  conditional = True

  def time_embedding(self, k: Any) -> torch.Tensor:
    """``time_mlp(k)``: (N,) or scalar integer times → (N, 4·nf)."""
    k = torch.as_tensor(k, device=self.init_conv.weight.device)
    return self.time_mlp(k.reshape(-1))

  def forward(self, x: torch.Tensor, k: Any) -> torch.Tensor:
    """Runs the network.

    Args:
      x: (B, in_nc, H, W) image; any H, W (reflect-padded, then cropped).
      k: integer time: a python int, a 0-d tensor, shape (1,) (broadcast
        over B) or (B,).

    Returns:
      (B, out_nc, H, W), the cumulative velocity.
    """
    return self._net(x, self.time_mlp(_time_tensor(k, x.shape[0], x.device)))


class UNet(_IRFlowUNet):
  """The time-free twin of :class:`ConditionalUNet` (spec §4.2)."""

  conditional = False

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    """Maps (B, in_nc, H, W) to (B, out_nc, H, W); any H, W."""
    return self._net(x, None)
