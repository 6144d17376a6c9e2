"""Shared Linen primitives, written the way XLA:CPU runs them fast.

Layout is NHWC throughout. Parameter leaves are named ``weight`` / ``bias`` so
that a Flax parameter path joined with ``.`` is the PyTorch state-dict key
(see ``restorect_jax.convert``). Layouts: k×k conv weights HWIO (a 1×1 conv is
``(1, 1, I, O)``, a depthwise conv ``(3, 3, 1, C)``), linear weights
``(in, out)``; everything else keeps the PyTorch shape.

Speed rules (measured in ``shared/spec/stack.md`` §2i and
``benchmarks/README.md``): 1×1 convolutions are einsums, depthwise 3×3
convolutions are a sum of nine shifted slices (on CPU with a hand-written
backward pass; a grouped ``lax.conv`` is an option, not the default), only
dense k×k convolutions use ``lax.conv``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# PyTorch's default init for Conv2d/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
# for the weight (kaiming_uniform with a=sqrt(5)) and for the bias.
torch_default_kernel_init = nn.initializers.variance_scaling(
    1.0 / 3.0, 'fan_in', 'uniform')


def _uniform_bias_init(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
  """PyTorch-order ``PixelUnshuffle`` on NHWC input.

  Output channel ``c * r * r + i * r + j`` holds input channel ``c`` at pixel
  ``(r * h + i, r * w + j)``, as ``torch.nn.PixelUnshuffle`` does (TF's
  ``space_to_depth`` uses a different order).

  Args:
    x: (B, H, W, C) with H and W divisible by ``r``.
    r: the down-scaling factor.

  Returns:
    (B, H / r, W / r, C * r * r).
  """
  b, h, w, c = x.shape
  if h % r or w % r:
    raise ValueError(
        f'pixel_unshuffle({r}) needs H and W divisible by {r}, got {h}x{w}.')
  x = x.reshape(b, h // r, r, w // r, r, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)  # (B, h, w, C, i, j)
  return x.reshape(b, h // r, w // r, c * r * r)


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
  """PyTorch-order ``PixelShuffle`` on NHWC input (inverse of unshuffle)."""
  b, h, w, c = x.shape
  if c % (r * r):
    raise ValueError(
        f'pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}.')
  x = x.reshape(b, h, w, c // (r * r), r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)  # (B, h, i, w, j, C)
  return x.reshape(b, h * r, w * r, c // (r * r))


def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, as ``torch.nn.functional.gelu`` by default."""
  return jax.nn.gelu(x, approximate=False)


def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
  return jnp.where(x >= 0, x, slope * x)


DEPTHWISE_FORMULATIONS = ('auto', 'shifted', 'shifted_vjp', 'lax')


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
  """Returns ``value`` if it is one of ``choices``.

  Raises:
    ValueError: naming ``what`` and the choices.
  """
  if value not in choices:
    raise ValueError(f'{what} must be one of {choices}, got {value!r}.')
  return value


def check_depthwise(formulation: str) -> str:
  """Returns ``formulation`` if it is in ``DEPTHWISE_FORMULATIONS``."""
  return check_choice(formulation, DEPTHWISE_FORMULATIONS, 'depthwise')


def resolve_depthwise(formulation: str, backend: str | None = None) -> str:
  """The concrete formulation ``'auto'`` stands for on ``backend``.

  ``'auto'`` is ``'shifted_vjp'`` on CPU (measured faster there, the same
  forward and gradients, ``benchmarks/README.md``) and ``'shifted'`` on
  GPU/TPU (unmeasured there, so unchanged); other values are returned as
  they are.

  Args:
    formulation: one of ``DEPTHWISE_FORMULATIONS``.
    backend: a JAX platform name; default ``jax.default_backend()`` at the
      time of the call (trace time inside ``jit``).

  Returns:
    ``'shifted'``, ``'shifted_vjp'`` or ``'lax'``.
  """
  check_depthwise(formulation)
  if formulation != 'auto':
    return formulation
  backend = backend or jax.default_backend()
  return 'shifted_vjp' if backend == 'cpu' else 'shifted'


def _depthwise_shifted(x: jax.Array, w: jax.Array) -> jax.Array:
  """Sum over the nine taps of a shifted slice of the padded input."""
  _, h, wd, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = None
  for i in range(3):
    for j in range(3):
      term = xp[:, i:i + h, j:j + wd, :] * w[i, j]
      out = term if out is None else out + term
  return out


@jax.custom_vjp
def _depthwise_shifted_vjp(x: jax.Array, w: jax.Array) -> jax.Array:
  """:func:`_depthwise_shifted` with a hand-written backward pass."""
  return _depthwise_shifted(x, w)


def _shifted_vjp_fwd(x, w):
  return _depthwise_shifted(x, w), (x, w)


def _shifted_vjp_bwd(res, g):
  # The barrier keeps XLA from merging the backward's shifted slices of x
  # with the forward's (CSE), which would make it materialise all nine.
  x, w, g = jax.lax.optimization_barrier(res + (g,))
  _, h, wd, _ = x.shape
  # y[p] = Σ_ij x[p + (i, j) - 1] w[i, j]  ⇒  dx[p] = Σ_ij g[p - (i, j) + 1]
  # w[i, j]: the same shift-sum of g with the taps flipped.
  dx = _depthwise_shifted(g, w[::-1, ::-1])
  # dw[i, j] = Σ_{b,p} x[p + (i, j) - 1] g[p]: nine per-tap reductions.
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dw = jnp.stack([
      jnp.sum(xp[:, i:i + h, j:j + wd, :] * g, axis=(0, 1, 2))
      for i in range(3) for j in range(3)]).reshape(w.shape)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_depthwise_shifted_vjp.defvjp(_shifted_vjp_fwd, _shifted_vjp_bwd)


def _depthwise_lax(x: jax.Array, w: jax.Array) -> jax.Array:
  """One grouped ``lax.conv`` (``feature_group_count = C``)."""
  return jax.lax.conv_general_dilated(
      x, w[:, :, None, :], (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=x.shape[-1])


_DEPTHWISE_IMPLS = {
    'shifted': _depthwise_shifted,
    'shifted_vjp': _depthwise_shifted_vjp,
    'lax': _depthwise_lax,
}


def depthwise_conv3x3(x: jax.Array, w: jax.Array,
                      formulation: str = 'auto') -> jax.Array:
  """Depthwise 3×3 cross-correlation with zero padding 1.

  Every formulation computes the same function (up to float rounding) with
  the same gradients:

  * ``'shifted'``: a sum of nine shifted slices of the padded input,
    differentiated by autodiff;
  * ``'shifted_vjp'``: the same forward with a hand-written backward (the
    input gradient is the shift-sum of the cotangent with the taps flipped,
    the weight gradient nine per-tap reductions) instead of autodiff's
    transpose, which pads each of the nine slice cotangents to the padded
    size and adds them — 1.35× faster on the S2 train step on XLA:CPU. It
    is a ``jax.custom_vjp``: reverse mode only (no ``jax.jvp``);
  * ``'lax'``: one grouped ``lax.conv`` (slow on XLA:CPU,
    ``shared/spec/stack.md`` §2i);
  * ``'auto'``: :func:`resolve_depthwise` — ``'shifted_vjp'`` on CPU,
    ``'shifted'`` on GPU/TPU.

  Args:
    x: (B, H, W, C).
    w: (3, 3, C) per-channel taps (PyTorch (C, 1, 3, 3) transposed).
    formulation: one of ``DEPTHWISE_FORMULATIONS``.

  Returns:
    (B, H, W, C).

  Raises:
    ValueError: unknown ``formulation``.
  """
  return _DEPTHWISE_IMPLS[resolve_depthwise(formulation)](x, w)


class Conv2d(nn.Module):
  """k×k convolution with zero padding (PyTorch ``nn.Conv2d``).

  Attributes:
    features: output channels.
    kernel_size: k (square kernel); an unpadded stride-1 1×1 conv runs as an
      einsum, everything else as one dense ``lax.conv`` (HWIO).
    use_bias: whether a ``bias`` leaf exists.
    stride: the stride on both spatial axes.
    padding: zero padding on every side (default ``k // 2``, "same" for an
      odd k), e.g. 1 for IR-Flow's 4×4 stride-2 down-sampling conv.
  """
  features: int
  kernel_size: int = 3
  use_bias: bool = False
  stride: int = 1
  padding: int | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param('weight', torch_default_kernel_init,
                   (k, k, cin, self.features), self.param_dtype)
    x = x.astype(self.dtype)
    w = w.astype(self.dtype)
    p = k // 2 if self.padding is None else self.padding
    if k == 1 and self.stride == 1 and p == 0:
      y = jnp.einsum('bhwc,cd->bhwd', x, w[0, 0])
    else:
      y = jax.lax.conv_general_dilated(
          x, w, (self.stride,) * 2, ((p, p), (p, p)),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.use_bias:
      b = self.param('bias', _uniform_bias_init(cin * k * k),
                     (self.features,), self.param_dtype)
      y = y + b.astype(self.dtype)
    return y


def upsample_nearest2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour ×2 up-sampling of (B, H, W, C) (``nn.Upsample``)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


class DWConv3x3(nn.Module):
  """Bias-free depthwise 3×3 conv (``nn.Conv2d(C, C, 3, groups=C)``).

  Attributes:
    formulation: how it is computed (:func:`depthwise_conv3x3`); the
      parameters are the same for every value.
  """
  formulation: str = 'auto'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    w = self.param('weight', torch_default_kernel_init, (3, 3, 1, c),
                   self.param_dtype)
    return depthwise_conv3x3(x.astype(self.dtype),
                             w[:, :, 0].astype(self.dtype), self.formulation)


class Linear(nn.Module):
  """PyTorch ``nn.Linear`` with the weight stored as (in, out)."""
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    w = self.param('weight', torch_default_kernel_init, (cin, self.features),
                   self.param_dtype)
    y = jnp.dot(x.astype(self.dtype), w.astype(self.dtype))
    if self.use_bias:
      b = self.param('bias', _uniform_bias_init(cin), (self.features,),
                     self.param_dtype)
      y = y + b.astype(self.dtype)
    return y


def layer_norm_last(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """``F.layer_norm`` over the last axis, no affine (population variance)."""
  xf = x.astype(jnp.float32)
  mu = xf.mean(-1, keepdims=True)
  var = jnp.square(xf - mu).mean(-1, keepdims=True)
  return ((xf - mu) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class _ChannelScaled(nn.Module):
  """A norm with a per-channel ``weight`` (initialised to ones)."""
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _param(self, name: str, x: jax.Array, init=nn.initializers.ones):
    return self.param(name, init, (x.shape[-1],), self.param_dtype)


class LayerNorm(_ChannelScaled):
  """``nn.LayerNorm`` over the last axis with ``weight`` and ``bias``."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self._param('weight', x)
    b = self._param('bias', x, nn.initializers.zeros)
    y = layer_norm_last(x, self.eps).astype(jnp.float32)
    return (y * w + b).astype(self.dtype)


class _SCLNBody(_ChannelScaled):
  """Spatial Channel LayerNorm exactly as the reference implements it.

  Per sample over all of (H, W, C): population variance floored at 1e-5, then
  divided by ``sqrt(var + 1e-5)`` (the eps is used twice), NaN → 0, clamped to
  [-10, 10], scaled by a per-channel ``weight``; no bias.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self._param('weight', x)
    xf = x.astype(jnp.float32)
    mu = xf.mean(axis=(1, 2, 3), keepdims=True)
    var = jnp.square(xf - mu).mean(axis=(1, 2, 3), keepdims=True)
    var = jnp.maximum(var, 1e-5)
    y = (xf - mu) / jnp.sqrt(var + 1e-5)
    y = jnp.where(jnp.isnan(y), 0.0, y)
    y = jnp.clip(y, -10.0, 10.0)
    return (y * w).astype(self.dtype)


LAYER_NORM_TYPES = ('SpatialChannel', 'WithBias')


class Norm(nn.Module):
  """The block norm: ``SpatialChannel`` (SCLN, default) or ``WithBias``.

  Its parameters live under ``body`` as in the reference (``norm1.body.*``).
  """
  layer_norm_type: str = 'SpatialChannel'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, name='body')
    if self.layer_norm_type == 'SpatialChannel':
      return _SCLNBody(**kw)(x)
    if self.layer_norm_type == 'WithBias':
      # Restormer's per-pixel LayerNorm over channels, weight and bias.
      return LayerNorm(eps=1e-5, **kw)(x)
    raise ValueError(
        f'layer_norm_type must be one of {LAYER_NORM_TYPES}, got '
        f'{self.layer_norm_type!r}.')


def reflect_pad_to_multiple(x: jax.Array, multiple: int
                            ) -> tuple[jax.Array, tuple[int, int]]:
  """Reflect-pads (B, H, W, C) on the bottom/right to a multiple.

  The reflection excludes the edge pixel (``torch`` / numpy ``'reflect'``).

  Returns:
    The padded array and the original (H, W).
  """
  _, h, w, _ = x.shape
  ph, pw = (-h) % multiple, (-w) % multiple
  if ph >= h or pw >= w:
    raise ValueError(
        f'Image {h}x{w} is too small to reflect-pad to a multiple of '
        f'{multiple}.')
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode='reflect')
  return x, (h, w)


def check_image(x: jax.Array, channels: int, what: str,
                multiple: int | None = None) -> None:
  """Raises ValueError unless ``x`` is (B, H, W, channels) [H, W % multiple]."""
  shape = tuple(x.shape)
  if len(shape) != 4 or shape[-1] != channels:
    raise ValueError(
        f'{what}: expected an NHWC array (B, H, W, {channels}), got shape '
        f'{shape}.')
  if multiple and (shape[1] % multiple or shape[2] % multiple):
    raise ValueError(
        f'{what}: H and W must be multiples of {multiple} (pad first, e.g. '
        f'with restorect_jax.restore), got {shape[1]}x{shape[2]}.')


def check_prior(z: jax.Array, batch: int, dim: int, what: str) -> None:
  """Raises ValueError unless ``z`` is (batch, dim)."""
  if tuple(z.shape) != (batch, dim):
    raise ValueError(
        f'{what}: expected a prior of shape ({batch}, {dim}), got '
        f'{tuple(z.shape)}.')
