"""RestoRect's predictors: the deployed student and the privileged teacher.

The student (``Interface``: the S2 student without G's decomposition head)
restores in two halves so that tiles share image-level state:
``prepare`` decomposes the padded image with the frozen ``Dl``, encodes the
conditions over the whole image and samples the two 256-d priors with the
Euler flow from noise keyed by the image's name; ``run`` applies G with
those priors to any batch of tiles. The S1 teacher sees the ground truth
(its priors come from (lq, gt)), so it only evaluates on paired data.

Bounded memory: an image above ``prior_max_pixels`` (default 1024 x 1024
padded pixels) gets its conditions window by window
(:func:`prior_windows`), so ``prepare`` needs the memory of one window
whatever the image size. The condition encoders are a stack of 3x3 convs
ending in a global average pool, and ``Dl`` is four 3x3 convs, so each
window carries a halo of :func:`condition_halo` pixels (their receptive
field) around a core; the pooled trunk features of the cores are summed
into the global average, and the encoders' MLP heads and the flow run once
on that average. The result equals the whole-image computation up to float
summation order (the windows' zero padding falls on image borders only).
Images within the bound take the whole-image path, bit for bit as before.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.inference.predictor import Predictor
from restorect_jax.methods.restorect.steps import decompose
from restorect_jax.models import DecomNet
from restorect_jax.models.rgformer import PRIOR_DIM

PAD_MULTIPLE = 8
DEFAULT_STEPS = 5  # the reference test's Euler steps
# Padded images with more pixels get their priors window by window.
PRIOR_MAX_PIXELS = 1024 * 1024
_DECOM_CONVS = 4  # Dl: four 3x3 convs (decom.0/2/4/6)
_UNSHUFFLE = 4  # the condition encoders' PixelUnshuffle factor


def draw_prior_noise(key: jax.Array, batch: int
                     ) -> tuple[jax.Array, jax.Array]:
  """Noise for the two flows, rex first then img (the reference's order)."""
  k_rex, k_img = jax.random.split(key)
  return (jax.random.normal(k_rex, (batch, PRIOR_DIM)),
          jax.random.normal(k_img, (batch, PRIOR_DIM)))


@functools.partial(jax.jit, static_argnames=('model', 'decom'))
def _priors(params, lq, noise_rex, noise_img, steps, *, model, decom):
  """Dl, conditions and the Euler flow; ``steps`` is traced (one program
  per shape for every step count)."""
  _, _, rex = decompose(decom, params['decom_low'], lq)
  return model.apply(params['interface'], lq, rex, noise_rex, noise_img,
                     steps, method='sample_priors')


@functools.partial(jax.jit, static_argnames=('model',))
def _restore_g(params, batch, z_rex, z_img, *, model):
  b = batch.shape[0]
  z_rex = jnp.broadcast_to(z_rex, (b,) + z_rex.shape[1:])
  z_img = jnp.broadcast_to(z_img, (b,) + z_img.shape[1:])
  return model.apply(params['interface'], batch, z_rex, z_img,
                     method='restore_with_priors')


# ----------------------------------------------------------------------------
# Priors window by window.
# ----------------------------------------------------------------------------


def condition_halo(model: nn.Module) -> int:
  """Context (px) the pooled condition features of a pixel depend on.

  ``Dl`` (four 3x3 convs) feeds the Retinex encoder; each encoder trunk is
  ``2 * n_encoder_res + 4`` 3x3 convs on the 4x unshuffled grid. Rounded
  up to :data:`PAD_MULTIPLE` (64 px for ``n_encoder_res=5``).
  """
  convs = 2 * model.n_encoder_res + 4
  radius = _DECOM_CONVS + _UNSHUFFLE * convs
  return -(-radius // PAD_MULTIPLE) * PAD_MULTIPLE


def _axis_windows(n: int, window: int, halo: int
                  ) -> list[tuple[int, int, int]]:
  """``(start, lo, hi)``: windows ``[start, start + window)`` of ``[0, n)``.

  The cores ``[lo, hi)`` partition ``[0, n)``; each core is at least
  ``halo`` from any window edge that is not an edge of ``[0, n)``.
  """
  if n <= window:
    return [(0, 0, n)]
  out, lo = [], 0
  while lo < n:
    hi = window - halo if lo == 0 else lo + window - 2 * halo
    if n - lo <= window - halo:  # the rest fits a window flush with n
      hi = n
    out.append((min(max(lo - halo, 0), n - window), lo, hi))
    lo = hi
  return out


def prior_windows(height: int, width: int, *, max_pixels: int, halo: int
                  ) -> tuple[tuple[int, int], list[tuple[int, ...]]]:
  """Windows of a padded ``height x width`` image for the conditions.

  Every window has the same shape (one compilation) and at most
  ``max_pixels`` pixels: ``t x t`` with ``t`` the largest multiple of 8
  whose square fits, or, when one side is at most ``t``, that whole side
  by as much of the other as fits.

  Args:
    height: padded height (a multiple of 8).
    width: padded width (a multiple of 8).
    max_pixels: pixels per window.
    halo: context around each core (:func:`condition_halo`).

  Returns:
    ``((win_h, win_w), [(y, x, y0, y1, x0, x1), ...])``: the window shape
    and, per window, its top-left corner in the image and its core rows
    ``[y0, y1)`` and columns ``[x0, x1)`` in window coordinates. The cores
    partition the image.

  Raises:
    ValueError: ``max_pixels`` is below ``(2 * halo + 8) ** 2``, which
      leaves too little core inside the halo.
  """
  m = PAD_MULTIPLE
  t = math.isqrt(int(max_pixels)) // m * m
  if height <= t or width <= t:
    short = min(height, width)
    long = min(max(height, width), int(max_pixels) // short // m * m)
    win = (short, long) if height <= width else (long, short)
  else:
    win = (t, t)
  if t < 2 * halo + m:
    raise ValueError(
        f'prior_max_pixels={max_pixels} allows {t}x{t} windows; with the '
        f'{halo}-px halo of the condition encoders they must be at least '
        f'{2 * halo + m} px wide: prior_max_pixels >= '
        f'{(2 * halo + m) ** 2}.')
  rows = _axis_windows(height, win[0], halo)
  cols = _axis_windows(width, win[1], halo)
  return win, [(y, x, y0 - y, y1 - y, x0 - x, x1 - x)
               for y, y0, y1 in rows for x, x0, x1 in cols]


def _encoder_taps(model: nn.Module) -> dict[tuple[str, ...], tuple[str, ...]]:
  """``{last trunk conv: first MLP linear}`` of each condition branch."""
  last = model.n_encoder_res + 6  # E.{n+6}: see models/prior_encoders.py
  return {('img_condition', f'E.{last}'): ('img_condition', 'mlp.0'),
          ('rex_condition', f'E_R.{last}'): ('rex_condition', 'mlp_R.0'),
          ('rex_condition', f'E_I.{last}'): ('rex_condition', 'mlp_I.0')}


def _check_taps(found, want, what: str) -> None:
  if sorted(found) != sorted(want):
    raise RuntimeError(
        f'Windowed priors: expected the condition encoders to call '
        f'{sorted(want)} once each ({what}), saw {sorted(found)}; '
        'models/prior_encoders.py changed, update _encoder_taps.')


@functools.partial(jax.jit, static_argnames=('model', 'decom'))
def _window_features(params, window, core, weight, *, model, decom):
  """One window's share of the conditions' globally pooled trunk features.

  Runs ``Dl`` and the unchanged condition encoders on ``window`` with two
  interceptions: each trunk's last conv output is zeroed outside the core
  (``leaky_relu(0) = 0``, so the pooled mean becomes the core's sum over
  the window area), and the pooled vector entering each MLP is captured.

  Args:
    params: ``{'interface', 'decom_low'}``.
    window: (1, h, w, 3) padded-image window.
    core: int32 (4,): core rows ``[y0, y1)`` and columns ``[x0, x1)`` in
      window pixels (multiples of 4).
    weight: float32 window area / image area (on the 4x unshuffled grid).
    model: the Interface.
    decom: the DecomNet module.

  Returns:
    ``{first MLP linear path: (1, F) float32}``: the core's contribution
    to each branch's global average.
  """
  _, _, rex = decompose(decom, params['decom_low'], window)
  taps = _encoder_taps(model)
  heads = {v: k for k, v in taps.items()}
  masked, pooled = [], {}

  def interceptor(next_fun, args, kwargs, context):
    path = context.module.path
    if context.method_name == '__call__' and path in taps:
      masked.append(path)
      y = next_fun(*args, **kwargs)
      iy = jnp.arange(y.shape[1]) * _UNSHUFFLE
      ix = jnp.arange(y.shape[2]) * _UNSHUFFLE
      keep = (((iy >= core[0]) & (iy < core[1]))[:, None]
              & ((ix >= core[2]) & (ix < core[3]))[None, :])
      return y * keep[None, :, :, None].astype(y.dtype)
    if context.method_name == '__call__' and path in heads:
      pooled['/'.join(path)] = args[0].astype(jnp.float32) * weight
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    model.apply(params['interface'], window, rex, method='conditions')
  _check_taps(masked, list(taps), 'trunk')
  _check_taps(pooled, ['/'.join(p) for p in heads], 'pooling')
  return pooled


@functools.partial(jax.jit, static_argnames=('model', 'steps'))
def _priors_from_features(params, pooled, noise_rex, noise_img, *, model,
                          steps):
  """The conditions' MLP heads on given pooled features, then the flow."""
  used = []

  def interceptor(next_fun, args, kwargs, context):
    key = '/'.join(context.module.path)
    if context.method_name == '__call__' and key in pooled:
      used.append(key)
      args = (pooled[key].astype(args[0].dtype),) + tuple(args[1:])
    return next_fun(*args, **kwargs)

  # A 4x4 stand-in image: its trunk output is replaced, so XLA drops it.
  lq = jnp.zeros((1, _UNSHUFFLE, _UNSHUFFLE, 3), jnp.float32)
  rex = jnp.zeros((1, _UNSHUFFLE, _UNSHUFFLE, 4), jnp.float32)
  with nn.intercept_methods(interceptor):
    c_rex, c_img = model.apply(params['interface'], lq, rex,
                               method='conditions')
  _check_taps(used, list(pooled), 'heads')
  return model.apply(params['interface'], c_rex, c_img, noise_rex,
                     noise_img, steps, method='sample_from_conditions')


def windowed_priors(params: Mapping[str, Any], padded: np.ndarray,
                    noise: tuple[jax.Array, jax.Array], steps: int, *,
                    model: nn.Module, decom: nn.Module,
                    max_pixels: int) -> tuple[jax.Array, jax.Array]:
  """The priors of a padded (H, W, 3) host image, window by window.

  Equal to ``_priors`` on the whole image up to float summation order; the
  compiled programs see one window (at most ``max_pixels`` pixels) at a
  time, and the image stays on the host.
  """
  h, w = padded.shape[:2]
  (wh, ww), boxes = prior_windows(h, w, max_pixels=max_pixels,
                                  halo=condition_halo(model))
  weight = np.float32(wh * ww / (h * w))
  total = None
  for y, x, y0, y1, x0, x1 in boxes:
    window = np.ascontiguousarray(padded[None, y:y + wh, x:x + ww])
    part = _window_features(params, window,
                            np.asarray((y0, y1, x0, x1), np.int32), weight,
                            model=model, decom=decom)
    total = part if total is None else jax.tree.map(jnp.add, total, part)
  return _priors_from_features(params, total, *noise, model=model,
                               steps=steps)


def student_predictor(interface: Mapping[str, Any],
                      decom_low: Mapping[str, Any], *, model: nn.Module,
                      info: dict[str, Any],
                      default_steps: int = DEFAULT_STEPS,
                      prior_max_pixels: int | None = PRIOR_MAX_PIXELS
                      ) -> Predictor:
  """The deployed student from Interface and ``Dl`` variables.

  Args:
    interface: ``{'params': ...}`` of the Interface (see
      :func:`interface_params` for a trained student's).
    decom_low: ``Dl`` variables.
    model: the Interface module.
    info: provenance.
    default_steps: Euler steps when none are given.
    prior_max_pixels: padded images with more pixels get their priors
      window by window (:func:`windowed_priors`: memory bounded by this
      many pixels, equal up to float summation order); None computes them
      on the whole image at any size. Windows are at least
      ``(2 * condition_halo(model) + 8) ** 2`` pixels.
  """
  params = {'interface': dict(interface), 'decom_low': dict(decom_low)}
  decom = DecomNet(dtype=model.dtype, param_dtype=model.param_dtype)
  if prior_max_pixels is not None:  # raises now if too small
    prior_windows(PAD_MULTIPLE, PAD_MULTIPLE, max_pixels=prior_max_pixels,
                  halo=condition_halo(model))

  def prepare(padded, steps, key, gt, noise):
    del gt
    if noise is None:
      noise = draw_prior_noise(key, 1)
    _, h, w, _ = padded.shape
    if prior_max_pixels is None or h * w <= prior_max_pixels:
      return _priors(params, padded, *noise, jnp.int32(steps), model=model,
                     decom=decom)
    return windowed_priors(params, np.asarray(padded)[0], noise, steps,
                           model=model, decom=decom,
                           max_pixels=prior_max_pixels)

  def run(batch, context, steps):
    del steps
    return _restore_g(params, batch, *context, model=model)

  return Predictor('restorect', PAD_MULTIPLE, True, default_steps, info,
                   prepare, run)


@functools.partial(jax.jit, static_argnames=('teacher', 'decom'))
def _teacher(params, lq, gt, frozen, *, teacher, decom):
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  _, _, rex_gt = decompose(decom, frozen['decom_high'], gt)
  return teacher.apply({'params': params}, lq, gt, rex_lq, rex_gt)['out']


def teacher_predictor(teacher_params: Mapping[str, Any],
                      frozen: Mapping[str, Any], *, teacher: nn.Module,
                      info: dict[str, Any]) -> Predictor:
  """The S1 teacher: restores ``lq`` with priors encoded from (lq, gt)."""
  decom = DecomNet(dtype=teacher.dtype, param_dtype=teacher.param_dtype)
  frozen = {k: frozen[k] for k in ('decom_low', 'decom_high')}

  def run(batch, gt, steps):
    del steps
    return _teacher(teacher_params, batch, gt, frozen, teacher=teacher,
                    decom=decom)

  return Predictor('restorect', PAD_MULTIPLE, False, 1, info,
                   lambda padded, steps, key, gt, noise: gt, run,
                   needs_gt=True)


def interface_params(student_params: Mapping[str, Any]) -> dict[str, Any]:
  """The deployed Interface's params: the student's minus G's decom head."""
  out = dict(student_params)
  out['G'] = {k: v for k, v in student_params['G'].items() if k != 'decom'}
  return out
