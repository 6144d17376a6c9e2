"""The S2 student loss in PyTorch, term for term as ``steps.student_loss``.

Reference behaviour (spec restorect.md §1, §2.6–§2.7; ``config.switches``
defaults): the DecomNets and the teacher run without gradient, the sampled
priors carry no gradient (``kd_gradient=False``), FLEX acts on the two prior
vectors and time labels are discrete. The randomness (time labels, flow
noise, sampler noise) is passed in as :class:`StudentRandoms` so a run can
be reproduced or matched against the JAX step; :func:`draw_student_randoms`
draws it with a ``torch.Generator``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from restorect_jax.torch_twin.layers import PRIOR_DIM
from restorect_jax.torch_twin.velocity import NUM_TIME_LABELS


@dataclasses.dataclass(frozen=True)
class StudentLossConfig:
  """Loss weights (``config.losses`` of ``configs/restorect_s2.py``)."""
  velocity_weight_phase1: float = 0.1
  velocity_weight_phase2: float = 0.05
  kd_weight: float = 1.0
  kd_temperature: float = 0.15
  flex_weight: float = 0.5
  flex_layer_weights: tuple[float, ...] = (2.0, 1.41, 1.0)
  flex_timestep: float = 0.2
  flex_snr_threshold: float = 0.4
  rf_steps: int = 5
  kd_gradient: bool = False


class StudentRandoms(NamedTuple):
  """Random draws of one student step (B = batch size).

  Attributes:
    t_idx_rex, t_idx_img: (B,) int64 time labels in [0, T - 1].
    eps_rex, eps_img: (B, 256) flow-matching noise.
    noise_rex, noise_img: (B, 256) sampler starting noise.
  """
  t_idx_rex: torch.Tensor
  eps_rex: torch.Tensor
  t_idx_img: torch.Tensor
  eps_img: torch.Tensor
  noise_rex: torch.Tensor
  noise_img: torch.Tensor


def draw_student_randoms(batch: int, *,
                         generator: torch.Generator | None = None,
                         device: torch.device | str | None = None,
                         num_labels: int = NUM_TIME_LABELS) -> StudentRandoms:
  """Draws :class:`StudentRandoms` (labels uniform, noise standard normal)."""
  kw = dict(generator=generator, device=device)
  return StudentRandoms(
      torch.randint(0, num_labels, (batch,), **kw),
      torch.randn(batch, PRIOR_DIM, **kw),
      torch.randint(0, num_labels, (batch,), **kw),
      torch.randn(batch, PRIOR_DIM, **kw),
      torch.randn(batch, PRIOR_DIM, **kw),
      torch.randn(batch, PRIOR_DIM, **kw))


def _flex_priors(teacher: list[torch.Tensor], student: list[torch.Tensor],
                 cfg: StudentLossConfig) -> torch.Tensor:
  """FLEX on (B, D) vectors: student-statistics cross-norm, no mask."""
  if cfg.flex_timestep >= cfg.flex_snr_threshold:  # SNR gate (t ≤ 1 here)
    return teacher[0].new_zeros(())
  losses = []
  for i, (t, s) in enumerate(zip(teacher, student, strict=True)):
    std, mean = torch.std_mean(s, dim=-1, keepdim=True, correction=0)
    std = std + 1e-8
    diff = (t - mean) / std - (s - mean) / std
    w = (cfg.flex_layer_weights[i] if i < len(cfg.flex_layer_weights)
         else 1.0)
    losses.append(w * (diff.square().sum() / (diff.numel() + 1e-8)))
  return cfg.flex_weight * (sum(losses) / len(losses))


def student_loss(student: nn.Module, teacher: nn.Module, decom_low: nn.Module,
                 decom_high: nn.Module, lq: torch.Tensor, gt: torch.Tensor,
                 randoms: StudentRandoms, *, phase: int = 2,
                 config: StudentLossConfig = StudentLossConfig()
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
  """S2 loss, phase 1 (flow only) or phase 2 (full student).

  Phase 1: ``w1 (MSE_v_rex + MSE_v_img) + KD-L1``. Phase 2: ``L1(out, gt) +
  L1(decom_img, lq) + L1(decom_mat, rex_gt) + KD-L1 + FLEX + w2 (MSE_v_rex +
  MSE_v_img)`` with G run on the sampled priors.

  Args:
    student: the Student twin (training network, with decomposition head).
    teacher: the Teacher twin (frozen; run under ``torch.no_grad``).
    decom_low, decom_high: DecomNet twins ``Dl`` and ``Dh`` (frozen).
    lq, gt: (B, 3, H, W) in [0, 1], H and W multiples of 8.
    randoms: the step's random draws.
    phase: 1 or 2.
    config: weights and switches.

  Returns:
    ``(loss, metrics)``; metric names as ``steps.student_loss``.
  """
  if phase not in (1, 2):
    raise ValueError(f'phase must be 1 or 2, got {phase}.')
  with torch.no_grad():
    rex_lq = torch.cat(decom_low(lq), dim=1)
    rex_gt = torch.cat(decom_high(gt), dim=1)
    z_rex, z_img = teacher.priors(lq, gt, rex_lq, rex_gt)
  c_rex, c_img = student.conditions(lq, rex_lq)
  mse = {}
  for which, z, c, t_idx, eps in (
      ('rex', z_rex, c_rex, randoms.t_idx_rex, randoms.eps_rex),
      ('img', z_img, c_img, randoms.t_idx_img, randoms.eps_img)):
    t = (t_idx.to(z.dtype) / (student.timesteps - 1))[:, None]
    x_t = (1.0 - t) * z + t * eps
    v = student.velocity(which, x_t, t_idx, c)
    mse[which] = F.mse_loss(v, eps - z)
  zh_rex, zh_img = student.sample_from_conditions(
      c_rex, c_img, randoms.noise_rex, randoms.noise_img, config.rf_steps,
      grad=config.kd_gradient)
  kd_l1 = config.kd_weight * (F.l1_loss(zh_rex, z_rex) +
                              F.l1_loss(zh_img, z_img))
  with torch.no_grad():
    kd_kl = sum(
        F.kl_div(F.log_softmax(s / config.kd_temperature, dim=-1),
                 F.log_softmax(t / config.kd_temperature, dim=-1),
                 reduction='batchmean', log_target=True)
        for t, s in ((z_rex, zh_rex), (z_img, zh_img)))
  metrics = {'loss_velocity_rex': mse['rex'], 'loss_velocity_img': mse['img'],
             'loss_kd_l1': kd_l1, 'kd_kl': kd_kl}
  if phase == 1:
    terms = {'velocity': config.velocity_weight_phase1 * (mse['rex'] +
                                                           mse['img']),
             'kd_l1': kd_l1}
  else:
    out, decom_img, decom_mat = student.restore_with_priors(lq, zh_rex,
                                                            zh_img)
    terms = {
        'l1': F.l1_loss(out, gt),
        'decom_img': F.l1_loss(decom_img, lq),
        'decom_mat': F.l1_loss(decom_mat, rex_gt),
        'kd_l1': kd_l1,
        'flex': _flex_priors([z_rex, z_img], [zh_rex, zh_img], config),
        'velocity': config.velocity_weight_phase2 * (mse['rex'] +
                                                      mse['img']),
    }
  loss = sum(terms.values())
  metrics.update({f'loss_{k}': v for k, v in terms.items()})
  return loss, metrics
