"""Deployed RestoRect inference: pad, decompose, sample priors, restore, crop.

``restore(params, lq, rf_steps=..., rng=...)`` is the public entry point;
``params = {'interface': <Interface variables>, 'decom_low': <DecomNet
variables>}`` (``Dl``, the published ``retinex_decomnet.pth`` /
``init_low.pth``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.models import DecomNet
from restorect_jax.models import Interface
from restorect_jax.models import layers
from restorect_jax.models.rgformer import PRIOR_DIM

PAD_MULTIPLE = 8


@functools.partial(jax.jit, static_argnames=('model', 'decom', 'rf_steps'))
def _restore_padded(params, lq, noise_rex, noise_img, *, model, decom,
                    rf_steps):
  r, l = decom.apply(params['decom_low'], lq)
  rex_lq = jnp.concatenate([r, l], axis=-1)
  return model.apply(params['interface'], lq, rex_lq, noise_rex, noise_img,
                     rf_steps)


def restore_with_noise(params: Mapping[str, Any], lq: jax.Array,
                       noise_rex: jax.Array, noise_img: jax.Array, *,
                       rf_steps: int = 5, model: nn.Module | None = None,
                       decom: nn.Module | None = None,
                       clip: bool = True) -> jax.Array:
  """Restores ``lq`` with given prior noise (reproducible, parity-testable).

  Args:
    params: ``{'interface': ..., 'decom_low': ...}`` variables.
    lq: (B, H, W, 3) in [0, 1], any H, W ≥ 8 (reflect-padded on the bottom
      and right to a multiple of 8, as the reference test does).
    noise_rex, noise_img: (B, 256) starting noise of the two flows.
    rf_steps: Euler steps (reference default 5).
    model: the Interface module (default: full size).
    decom: the DecomNet module.
    clip: clamp the output to [0, 1] like the reference's test.

  Returns:
    (B, H, W, 3) restored image.
  """
  layers.check_image(lq, 3, 'restore input lq')
  b = lq.shape[0]
  layers.check_prior(noise_rex, b, PRIOR_DIM, 'noise_rex')
  layers.check_prior(noise_img, b, PRIOR_DIM, 'noise_img')
  padded, (h, w) = layers.reflect_pad_to_multiple(
      jnp.asarray(lq, jnp.float32), PAD_MULTIPLE)
  out = _restore_padded(
      params, padded, noise_rex, noise_img, model=model or Interface(),
      decom=decom or DecomNet(), rf_steps=int(rf_steps))
  out = out[:, :h, :w, :]
  return jnp.clip(out, 0.0, 1.0) if clip else out


def draw_prior_noise(rng: jax.Array, batch: int
                     ) -> tuple[jax.Array, jax.Array]:
  """Noise for the two flows, rex first then img (the reference's order)."""
  k_rex, k_img = jax.random.split(rng)
  return (jax.random.normal(k_rex, (batch, PRIOR_DIM)),
          jax.random.normal(k_img, (batch, PRIOR_DIM)))


def restore(params: Mapping[str, Any], lq: jax.Array, *, rf_steps: int = 5,
            rng: jax.Array, model: nn.Module | None = None,
            decom: nn.Module | None = None, clip: bool = True) -> jax.Array:
  """Restores (B, H, W, 3) images; stochastic through ``rng``.

  Same ``rng`` → identical output. See :func:`restore_with_noise`.
  """
  noise_rex, noise_img = draw_prior_noise(rng, lq.shape[0])
  return restore_with_noise(params, lq, noise_rex, noise_img,
                            rf_steps=rf_steps, model=model, decom=decom,
                            clip=clip)
