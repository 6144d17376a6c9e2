"""RestoRect's training losses per stage: S1 (teacher) and S2 (student).

Each loss is ``(params, batch, frozen, draws) -> (loss, metrics)``:
``frozen`` holds what is not trained (the DecomNets ``decom_low`` /
``decom_high`` and, in S2, the teacher's EMA parameters) and is passed in
rather than closed over, so it is neither baked into the compiled program
nor checkpointed with the student; ``draws`` holds every random draw of the
step, made outside the loss (:func:`draw_student`). Loss terms follow spec
§1 / §2.7; the paper-vs-code switches are in ``config.switches`` (README,
"Reference vs paper").
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from restorect_jax.core.train_step import Metrics, f32
from restorect_jax.methods.restorect import flow
from restorect_jax.methods.restorect import losses
from restorect_jax.models.rgformer import DECODER_LEVELS
from restorect_jax.models.rgformer import PRIOR_DIM

sg = jax.lax.stop_gradient


def decompose(decom: nn.Module, variables: Any, img: jax.Array
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Frozen DecomNet: ``(R, L, concat(R, L))`` without gradient."""
  r, l = decom.apply(variables, img)
  r, l = sg(r), sg(l)
  return r, l, jnp.concatenate([r, l], axis=-1)


def teacher_loss(params, batch, frozen, draws, *, teacher: nn.Module,
                 decom: nn.Module, config: ml_collections.ConfigDict
                 ) -> tuple[jax.Array, Metrics]:
  """S1 loss: L1 + decomposition L1s + HVI + DecomNet side terms.

  The side terms are computed on ``gt`` with ``Dh``; in the reference they
  carry no gradient (``switches.learnable_constraints=False``). With the
  switch on, the anisotropic-diffusion scale ``s`` and the HVI ``k`` in
  ``params['constraints']`` are trained, as the paper describes.
  ``draws`` is empty: S1 makes no random draw.
  """
  del draws
  lq, gt = batch['lq'], batch['gt']
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  r_gt, l_gt, rex_gt = decompose(decom, frozen['decom_high'], gt)
  res = f32(teacher.apply({'params': params['model']}, lq, gt, rex_lq,
                          rex_gt))
  r_gt, l_gt, rex_gt = f32((r_gt, l_gt, rex_gt))
  learnable = config.switches.learnable_constraints
  cons = params['constraints'] if learnable else sg(params['constraints'])
  lw = config.losses
  terms = {
      'l1': losses.l1_loss(res['out'], gt),
      'decom_mat': losses.l1_loss(res['decom_mat'], rex_gt),
      'decom_img': losses.l1_loss(res['decom_img'], lq),
      'hvi': losses.hvi_color_loss(res['out'], gt, weight=lw.hvi_weight,
                                   k=cons['hvi_k']),
  }
  side = losses.decom_constraints(gt, r_gt, l_gt, s=cons['aniso_s'],
                                  weights=tuple(lw.decom_weights_s1))
  if not learnable:
    side = sg(side)
  terms.update(side)
  loss = sum(terms.values())
  return loss, {f'loss_{k}': v for k, v in terms.items()}


def draw_student(rng: jax.Array, batch: dict[str, jax.Array], *,
                 continuous: bool = False) -> dict[str, jax.Array]:
  """Every random draw of one S2 step, in the reference's call order.

  ``t_idx_rex`` (label), ``eps_rex``, ``noise_rex``, then the same three for
  ``img`` (``shared/parity/README.md``, "Training steps"); ``t_<flow>`` is
  the time ``t_idx / (T − 1)`` (or the continuous draw with
  ``switches.continuous_time``). The keys are split as before the draws
  moved out of the loss, so runs are unchanged.
  """
  b = batch['lq'].shape[0]
  keys = jax.random.split(rng, 6)
  draws = {}
  for i, which in enumerate(('rex', 'img')):
    t, t_idx = flow.sample_time(keys[2 * i], b, continuous=continuous)
    draws[f't_{which}'], draws[f't_idx_{which}'] = t, t_idx
    draws[f'eps_{which}'] = jax.random.normal(keys[2 * i + 1],
                                              (b, PRIOR_DIM))
  k_rex, k_img = jax.random.split(keys[4])
  draws['noise_rex'] = jax.random.normal(k_rex, (b, PRIOR_DIM))
  draws['noise_img'] = jax.random.normal(k_img, (b, PRIOR_DIM))
  return draws


def _teacher_targets(frozen, lq, gt, rex_lq, rex_gt, *, teacher, want_feats):
  """Teacher priors (and decoder features) under stop_gradient."""
  tv = {'params': frozen['teacher']}
  if not want_feats:
    z_rex, z_img = f32(teacher.apply(tv, lq, gt, rex_lq, rex_gt,
                                     method='priors'))
    return sg(z_rex), sg(z_img), None
  res, inter = f32(teacher.apply(tv, lq, gt, rex_lq, rex_gt,
                                 mutable=['intermediates']))
  feats = [inter['intermediates']['G'][k][0] for k in DECODER_LEVELS]
  return sg(res['z_rex']), sg(res['z_img']), [sg(f) for f in feats]


def student_loss(params, batch, frozen, draws, *, phase: int,
                 student: nn.Module, teacher: nn.Module, decom: nn.Module,
                 config: ml_collections.ConfigDict
                 ) -> tuple[jax.Array, Metrics]:
  """S2 loss for phase 1 (flow only) or phase 2 (full student).

  Phase 1: ``w1 (MSE_v_rex + MSE_v_img) + KD-L1``. Phase 2: pixel and
  decomposition L1s of G run on the *sampled* priors, ``+ KD-L1 + FLEX +
  w2 (MSE_v_rex + MSE_v_img)``. By default (reference) the sampled priors
  carry no gradient, so KD and FLEX only shift the loss value
  (``switches.kd_gradient`` turns the gradient on). ``draws`` come from
  :func:`draw_student`.
  """
  sw, lw = config.switches, config.losses
  lq, gt = batch['lq'], batch['gt']
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  _, _, rex_gt = decompose(decom, frozen['decom_high'], gt)
  feats_wanted = phase == 2 and sw.flex_target == 'decoder'
  z_rex, z_img, t_feats = _teacher_targets(
      frozen, lq, gt, rex_lq, rex_gt, teacher=teacher,
      want_feats=feats_wanted)
  sv = {'params': params['model']}

  c_rex, c_img = student.apply(sv, lq, rex_lq, method='conditions')
  mse = {}
  for which, z, c in (('rex', z_rex, c_rex), ('img', z_img, c_img)):
    x_t = flow.interpolate(z, draws[f'eps_{which}'], draws[f't_{which}'])
    v = f32(student.apply(sv, which, x_t, draws[f't_idx_{which}'], c,
                          method='velocity'))
    mse[which] = flow.velocity_mse(
        v, flow.velocity_target(z, draws[f'eps_{which}']))

  # The conditions computed above feed the sampler too (the reference
  # recomputes them from the same input; the values are identical).
  zh_rex, zh_img = f32(student.apply(sv, c_rex, c_img, draws['noise_rex'],
                                     draws['noise_img'], config.rf_steps,
                                     method='sample_from_conditions'))
  if not sw.kd_gradient:
    zh_rex, zh_img = sg(zh_rex), sg(zh_img)
  kd_kl, kd_l1 = losses.kd_loss([z_rex, z_img], [zh_rex, zh_img],
                                temperature=lw.kd_temperature)
  kd_l1 = lw.kd_weight * kd_l1
  metrics = {'loss_velocity_rex': mse['rex'], 'loss_velocity_img': mse['img'],
             'loss_kd_l1': kd_l1, 'kd_kl': sg(kd_kl)}
  if phase == 1:
    terms = {'velocity': lw.velocity_weight_phase1 * (mse['rex'] + mse['img']),
             'kd_l1': kd_l1}
  else:
    if feats_wanted:
      (out, decom_img, decom_mat), inter = f32(student.apply(
          sv, lq, zh_rex, zh_img, method='restore_with_priors',
          mutable=['intermediates']))
      s_feats = [inter['intermediates']['G'][k][0] for k in DECODER_LEVELS]
      flex = losses.flex_loss(t_feats, s_feats, loss_weight=lw.flex_weight,
                              layer_weights=tuple(lw.flex_layer_weights),
                              timestep=lw.flex_timestep)
    else:
      out, decom_img, decom_mat = f32(student.apply(
          sv, lq, zh_rex, zh_img, method='restore_with_priors'))
      flex = losses.flex_loss([z_rex, z_img], [zh_rex, zh_img],
                              loss_weight=lw.flex_weight,
                              layer_weights=tuple(lw.flex_layer_weights),
                              timestep=lw.flex_timestep)
    terms = {
        'l1': losses.l1_loss(out, gt),
        'decom_img': losses.l1_loss(decom_img, lq),
        'decom_mat': losses.l1_loss(decom_mat, f32(rex_gt)),
        'kd_l1': kd_l1,
        'flex': flex,
        'velocity': lw.velocity_weight_phase2 * (mse['rex'] + mse['img']),
    }
  loss = sum(terms.values())
  metrics.update({f'loss_{k}': v for k, v in terms.items()})
  return loss, metrics
