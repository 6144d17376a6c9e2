"""PyTorch twin of RGFormer, RestoRect's restoration network ``G``.

Spec ``shared/spec/restorect.md`` §2.3–§2.5, §3. Blocks are
``x + Attn(Norm1(x), z)`` then ``x + FFN(Norm2(x), z)``; the prior enters as
``x ⊙ (1 + W z)`` inside Attn and FFN. Encoder, latent and decoder blocks use
Retinex cross-attention (queries from the first 3C/4 channels, keys/values
from the last C/4) driven by ``z_rex``; the refinement blocks use plain
channel attention driven by ``z_img``. NCHW throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from restorect_jax.torch_twin import layers
from restorect_jax.torch_twin.layers import PRIOR_DIM
from restorect_jax.torch_twin.layers import PRIOR_R_DIM


class _AttentionBase(nn.Module):
  """Temperature, QK-LayerNorms and output projection of both attentions."""

  def __init__(self, dim: int, num_heads: int):
    super().__init__()
    self.num_heads = num_heads
    self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
    self.project_out = layers.conv1x1(dim, dim)
    self.q_norm = nn.LayerNorm(dim // num_heads, eps=1e-5)
    self.k_norm = nn.LayerNorm(dim // num_heads, eps=1e-5)

  def _attend(self, q: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor) -> torch.Tensor:
    """Transposed (channel) attention of (B, C, H, W) q, k, v."""
    b, c, h, w = q.shape
    heads = self.num_heads
    # (B, heads, HW, d): LayerNorm over the per-head channels at each pixel.
    q = self.q_norm(q.reshape(b, heads, c // heads, h * w).transpose(-1, -2))
    k = self.k_norm(k.reshape(b, heads, c // heads, h * w).transpose(-1, -2))
    q = F.normalize(q, dim=-2)  # L2 over pixels
    k = F.normalize(k, dim=-2)
    attn = (q.transpose(-1, -2) @ k) * self.temperature  # (B, heads, d, d)
    out = attn.softmax(dim=-1) @ v.reshape(b, heads, c // heads, h * w)
    return self.project_out(out.reshape(b, c, h, w))


class RetinexAttention(_AttentionBase):
  """Retinex cross-attention ("Rttention"): R channels query, L key/value."""

  def __init__(self, dim: int, num_heads: int):
    super().__init__(dim, num_heads)
    cr = 3 * dim // 4
    self.split = cr
    self.kernel_R = nn.Sequential(nn.Linear(PRIOR_R_DIM, cr, bias=False))
    self.kernel_I = nn.Sequential(
        nn.Linear(PRIOR_DIM - PRIOR_R_DIM, dim - cr, bias=False))
    self.q_R = layers.conv1x1(cr, dim)
    self.q_dwconv = layers.dwconv3x3(dim)
    self.kv_I = layers.conv1x1(dim - cr, 2 * dim)
    self.kv_dwconv = layers.dwconv3x3(2 * dim)

  def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    x_r = layers.modulate(x[:, :self.split],
                          self.kernel_R(z[:, :PRIOR_R_DIM]))
    x_i = layers.modulate(x[:, self.split:],
                          self.kernel_I(z[:, PRIOR_R_DIM:]))
    q = self.q_dwconv(self.q_R(x_r))
    k, v = self.kv_dwconv(self.kv_I(x_i)).chunk(2, dim=1)
    return self._attend(q, k, v)


class Attention(_AttentionBase):
  """Plain MDTA channel attention with prior modulation (refinement)."""

  def __init__(self, dim: int, num_heads: int):
    super().__init__(dim, num_heads)
    self.kernel = nn.Sequential(nn.Linear(PRIOR_DIM, dim, bias=False))
    self.qkv = layers.conv1x1(dim, 3 * dim)
    self.qkv_dwconv = layers.dwconv3x3(3 * dim)

  def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    x = layers.modulate(x, self.kernel(z))
    q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
    return self._attend(q, k, v)


class FeedForward(nn.Module):
  """Gated-dconv FFN (GDFN) with prior modulation; exact GELU on 1st half."""

  def __init__(self, dim: int, ffn_expansion_factor: float):
    super().__init__()
    hidden = int(dim * ffn_expansion_factor)
    self.kernel = nn.Sequential(nn.Linear(PRIOR_DIM, dim, bias=False))
    self.project_in = layers.conv1x1(dim, 2 * hidden)
    self.dwconv = layers.dwconv3x3(2 * hidden)
    self.project_out = layers.conv1x1(hidden, dim)

  def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    x = layers.modulate(x, self.kernel(z))
    u1, u2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
    return self.project_out(F.gelu(u1) * u2)


class TransformerBlock(nn.Module):
  """Pre-norm block; ``retinex`` picks Rttention (True) or Attention."""

  def __init__(self, dim: int, num_heads: int,
               ffn_expansion_factor: float = 2.66,
               layer_norm_type: str = 'SpatialChannel', retinex: bool = True):
    super().__init__()
    self.norm1 = layers.Norm(dim, layer_norm_type)
    self.attn = (RetinexAttention if retinex else Attention)(dim, num_heads)
    self.norm2 = layers.Norm(dim, layer_norm_type)
    self.ffn = FeedForward(dim, ffn_expansion_factor)

  def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    x = x + self.attn(self.norm1(x), z)
    return x + self.ffn(self.norm2(x), z)


class _Level(nn.ModuleList):
  """Blocks of one level, indexed ``<level>.<i>`` like the reference."""

  def forward(self, x: torch.Tensor,  # pylint: disable=arguments-differ
              z: torch.Tensor) -> torch.Tensor:
    for block in self:
      x = block(x, z)
    return x


class _PatchEmbed(nn.Module):
  """``patch_embed.proj``: bias-free conv3x3 3 → dim."""

  def __init__(self, cin: int, dim: int):
    super().__init__()
    self.proj = layers.conv3x3(cin, dim, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.proj(x)


class _Resample(nn.Module):
  """``body = [conv3x3, Pixel(Un)Shuffle(2)]``."""

  def __init__(self, cin: int, cout: int, down: bool):
    super().__init__()
    self.body = nn.Sequential(
        layers.conv3x3(cin, cout, bias=False),
        nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.body(x)


class DecomHead(nn.Module):
  """The decomposition head inside G (``G.decom.decom.{0,2,4,6}``)."""

  def __init__(self, dim: int):
    super().__init__()
    self.decom = nn.Sequential(
        layers.conv3x3(dim, dim), nn.LeakyReLU(0.2),
        layers.conv3x3(dim, dim), nn.LeakyReLU(0.2),
        layers.conv3x3(dim, dim), nn.LeakyReLU(0.2),
        layers.conv3x3(dim, 4), nn.ReLU())

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.decom(x)


class RGFormer(nn.Module):
  """The restoration network G.

  Args:
    dim: base width.
    num_blocks: blocks per encoder level / latent.
    num_refinement_blocks: plain-attention blocks at full resolution.
    heads: heads per level.
    ffn_expansion_factor: GDFN hidden ratio (2.66).
    layer_norm_type: ``'SpatialChannel'`` (SCLN) or ``'WithBias'``.
    decom_head: build the decomposition head (teacher / S2 training).
  """

  def __init__(self, dim: int = 64, num_blocks: Sequence[int] = (3, 3, 3, 3),
               num_refinement_blocks: int = 3,
               heads: Sequence[int] = (1, 2, 4, 8),
               ffn_expansion_factor: float = 2.66,
               layer_norm_type: str = 'SpatialChannel',
               decom_head: bool = True):
    super().__init__()
    d, nb, hd = dim, tuple(num_blocks), tuple(heads)

    def level(n, width, n_heads, retinex=True):
      return _Level(TransformerBlock(width, n_heads, ffn_expansion_factor,
                                     layer_norm_type, retinex)
                    for _ in range(n))

    self.patch_embed = _PatchEmbed(3, d)
    self.encoder_level1 = level(nb[0], d, hd[0])
    self.down1_2 = _Resample(d, d // 2, down=True)
    self.encoder_level2 = level(nb[1], 2 * d, hd[1])
    self.down2_3 = _Resample(2 * d, d, down=True)
    self.encoder_level3 = level(nb[2], 4 * d, hd[2])
    self.down3_4 = _Resample(4 * d, 2 * d, down=True)
    self.latent = level(nb[3], 8 * d, hd[3])
    self.up4_3 = _Resample(8 * d, 16 * d, down=False)
    self.reduce_chan_level3 = layers.conv1x1(8 * d, 4 * d)
    self.decoder_level3 = level(nb[2], 4 * d, hd[2])
    self.up3_2 = _Resample(4 * d, 8 * d, down=False)
    self.reduce_chan_level2 = layers.conv1x1(4 * d, 2 * d)
    self.decoder_level2 = level(nb[1], 2 * d, hd[1])
    self.up2_1 = _Resample(2 * d, 4 * d, down=False)
    self.decoder_level1 = level(nb[0], 2 * d, hd[0])
    self.img_refinement = level(num_refinement_blocks, 2 * d, hd[0],
                                retinex=False)
    self.img_output = layers.conv3x3(2 * d, 3, bias=False)
    self.decom = DecomHead(d) if decom_head else None

  def forward(self, lq: torch.Tensor, z_rex: torch.Tensor,
              z_img: torch.Tensor):
    """Restores ``lq``.

    Args:
      lq: (B, 3, H, W) in [0, 1]; H and W multiples of 8.
      z_rex: (B, 256) Retinex prior.
      z_img: (B, 256) image prior.

    Returns:
      ``out`` (B, 3, H, W) without the decomposition head, else
      ``(out, decom_img (B, 3, H, W), decom_mat (B, 4, H, W))``.
    """
    layers.check_image(lq, 3, 'RGFormer input lq', multiple=8)
    layers.check_prior(z_rex, lq.shape[0], 'RGFormer z_rex')
    layers.check_prior(z_img, lq.shape[0], 'RGFormer z_img')
    enc1 = self.encoder_level1(self.patch_embed(lq), z_rex)
    enc2 = self.encoder_level2(self.down1_2(enc1), z_rex)
    enc3 = self.encoder_level3(self.down2_3(enc2), z_rex)
    x = self.latent(self.down3_4(enc3), z_rex)

    x = self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], dim=1))
    x = self.decoder_level3(x, z_rex)
    x = self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1))
    x = self.decoder_level2(x, z_rex)
    up1 = self.up2_1(x)
    x = self.decoder_level1(torch.cat([up1, enc1], dim=1), z_rex)
    x = self.img_refinement(x, z_img)
    out = self.img_output(x) + lq
    if self.decom is None:
      return out
    y = self.decom(enc1)
    return out, y[:, :3] * y[:, 3:4], self.decom(up1)
