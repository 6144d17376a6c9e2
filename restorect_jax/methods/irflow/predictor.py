"""IR-Flow's predictor: the sampler run from the degraded image (t = 1).

Deterministic (no noise), so the seed and the image's name do not matter.
The reference reflect-pads to a multiple of ``2**depth`` and crops back at
every network call, so each Euler step sees the unpadded state. Here the
image is padded once (one shape for the whole run, and tiles that cover the
padded area as the other methods' do) and the border is re-reflected from
the image before every call (:func:`ops.padding.refill_reflect`, the
predictor's ``refills_padding``): the same network inputs as the
reference's, so multi-step outputs match it on any size. Without the refill
the padded border would evolve with the image and leak into it (max|Δ|
0.05 at N = 4 on a 40×40 image).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.inference.predictor import Predictor
from restorect_jax.methods.irflow import flow
from restorect_jax.methods.irflow.steps import irflow_velocity
from restorect_jax.ops import padding

SAMPLERS = {'euler': flow.euler_sample, 'heun': flow.heun_sample,
            'standard_euler': flow.standard_euler_sample}
DEFAULT_STEPS = 1  # the reference's train-time validation


def check_sampler(sampler: str) -> None:
  if sampler not in SAMPLERS:
    raise ValueError(f'Unknown IR-Flow sampler {sampler!r}; known: '
                     f'{sorted(SAMPLERS)}.')


@functools.partial(jax.jit, static_argnames=(
    'model', 'sampler', 'channel_order', 'base'))
def sample(params, lq, num_steps, valid=None, *, model: nn.Module,
           sampler: str = 'euler', channel_order: str = 'bgr',
           base: bool = False):
  """IR-Flow restoration of a (B, H, W, 3) batch (sides padded).

  ``num_steps`` (≥ 1, checked by the caller) is traced: one compiled
  program per shape serves every step count. ``valid`` ((B, 2) int, or
  None when the batch is all image): the image's (h, w) in each item; the
  padding beyond is re-reflected from the state before every network call.
  """
  net = irflow_velocity(model, params, channel_order=channel_order,
                        base=base)
  if valid is None:
    f = net
  else:
    f = lambda x, k: net(padding.refill_reflect(x, valid), k)
  if base:
    return f(lq, None)
  return SAMPLERS[sampler](f, lq, num_steps)


def irflow_predictor(params: Mapping[str, Any], *, model: nn.Module,
                     info: dict[str, Any], channel_order: str = 'bgr',
                     sampler: str = 'euler', base: bool = False,
                     default_steps: int = DEFAULT_STEPS) -> Predictor:
  """A predictor from ConditionalUNet (or time-free UNet) params."""
  check_sampler(sampler)
  params = dict(params)

  def run(batch, context, steps, valid):
    del context
    return sample(params, batch, jnp.int32(steps), valid, model=model,
                  sampler=sampler, channel_order=channel_order, base=base)

  return Predictor('irflow', 2**model.depth, False, default_steps, info,
                   lambda padded, steps, key, gt, noise: None, run,
                   refills_padding=True)
