"""RestoRect's predictors: the deployed student and the privileged teacher.

The student (``Interface``: the S2 student without G's decomposition head)
restores in two halves so that tiles share image-level state:
``prepare`` decomposes the padded image with the frozen ``Dl``, encodes the
conditions over the whole image and samples the two 256-d priors with the
Euler flow from noise keyed by the image's name; ``run`` applies G with
those priors to any batch of tiles. The S1 teacher sees the ground truth
(its priors come from (lq, gt)), so it only evaluates on paired data.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restorect_jax.inference.predictor import Predictor
from restorect_jax.methods.restorect.steps import decompose
from restorect_jax.models import DecomNet
from restorect_jax.models.rgformer import PRIOR_DIM

PAD_MULTIPLE = 8
DEFAULT_STEPS = 5  # the reference test's Euler steps


def draw_prior_noise(key: jax.Array, batch: int
                     ) -> tuple[jax.Array, jax.Array]:
  """Noise for the two flows, rex first then img (the reference's order)."""
  k_rex, k_img = jax.random.split(key)
  return (jax.random.normal(k_rex, (batch, PRIOR_DIM)),
          jax.random.normal(k_img, (batch, PRIOR_DIM)))


@functools.partial(jax.jit, static_argnames=('model', 'decom', 'steps'))
def _priors(params, lq, noise_rex, noise_img, *, model, decom, steps):
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


def student_predictor(interface: Mapping[str, Any],
                      decom_low: Mapping[str, Any], *, model: nn.Module,
                      info: dict[str, Any],
                      default_steps: int = DEFAULT_STEPS) -> Predictor:
  """The deployed student from Interface and ``Dl`` variables.

  Args:
    interface: ``{'params': ...}`` of the Interface (see
      :func:`interface_params` for a trained student's).
    decom_low: ``Dl`` variables.
    model: the Interface module.
    info: provenance.
    default_steps: Euler steps when none are given.
  """
  params = {'interface': dict(interface), 'decom_low': dict(decom_low)}
  decom = DecomNet(dtype=model.dtype, param_dtype=model.param_dtype)

  def prepare(padded, steps, key, gt, noise):
    del gt
    if noise is None:
      noise = draw_prior_noise(key, 1)
    return _priors(params, padded, *noise, model=model, decom=decom,
                   steps=steps)

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
