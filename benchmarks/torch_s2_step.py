"""The S2 phase-2 train step in PyTorch, the twin of the JAX step.

JAX: the RestoRect method's ``phases(...)['phase2']`` —
``methods.restorect.steps.student_loss``
(phase 2), ``value_and_grad``, AdamW (``optim.adamw``, weight decay 0),
EMA of the params, the global gradient norm as a metric. Torch, here: the
twin's ``torch_twin.student_loss`` (phase 2, the same terms and switches,
written term for term after ``student_loss``), ``backward``,
``torch.optim.AdamW`` (foreach) with the same hyper-parameters, the same
EMA update and gradient norm. Both run the frozen DecomNets and the frozen
teacher's prior encoders without gradient inside the step.

The random draws (time labels, flow noise, sampler noise) are inputs; with
:func:`jax_draws` they are exactly the values the JAX step draws, so the
first step's losses can be compared.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import torch

from restorect_jax.methods.restorect import flow
from restorect_jax import torch_twin


def jax_draws(rng: jax.Array, step: int, batch: int) -> dict[str, np.ndarray]:
  """The random values ``steps.draw_student`` draws at ``step``.

  Mirrors its key use: ``keys = split(fold_in(rng, step), 6)``; per flow
  (rex, img) a time label from ``keys[2i]`` and ε from ``keys[2i+1]``; the
  sampler noise from ``split(keys[4])`` (rex, img).
  """
  keys = jax.random.split(jax.random.fold_in(rng, step), 6)
  out = {}
  for i, which in enumerate(('rex', 'img')):
    _, t_idx = flow.sample_time(keys[2 * i], batch)
    out[f't_idx_{which}'] = np.asarray(t_idx).astype(np.int64)
    out[f'eps_{which}'] = np.asarray(
        jax.random.normal(keys[2 * i + 1], (batch, 256)))
  k_rex, k_img = jax.random.split(keys[4])
  out['noise_rex'] = np.asarray(jax.random.normal(k_rex, (batch, 256)))
  out['noise_img'] = np.asarray(jax.random.normal(k_img, (batch, 256)))
  return out


def loss_config(config: ml_collections.ConfigDict
                ) -> torch_twin.StudentLossConfig:
  """The twin's loss settings from the JAX S2 config (refuses other
  switches than the twin implements)."""
  sw, lw = config.switches, config.losses
  if sw.flex_target != 'priors' or sw.continuous_time:
    raise ValueError('The torch twin loss implements flex_target=priors and '
                     'discrete time labels only.')
  return torch_twin.StudentLossConfig(
      velocity_weight_phase1=lw.velocity_weight_phase1,
      velocity_weight_phase2=lw.velocity_weight_phase2,
      kd_weight=lw.kd_weight, kd_temperature=lw.kd_temperature,
      flex_weight=lw.flex_weight,
      flex_layer_weights=tuple(lw.flex_layer_weights),
      flex_timestep=lw.flex_timestep, rf_steps=config.rf_steps,
      kd_gradient=sw.kd_gradient)


def to_randoms(draws: dict[str, np.ndarray], device: str
               ) -> torch_twin.StudentRandoms:
  t = {k: torch.tensor(np.array(v)).to(device) for k, v in draws.items()}
  return torch_twin.StudentRandoms(
      t['t_idx_rex'], t['eps_rex'], t['t_idx_img'], t['eps_img'],
      t['noise_rex'], t['noise_img'])


class PhaseTwoStep:
  """One S2 phase-2 optimisation step of the torch twin student.

  Args:
    student, teacher, decom_low, decom_high: torch twins (NCHW), the
      student in train mode.
    config: the S2 ``ConfigDict`` the JAX step uses.
    lr: learning rate (the JAX phase-2 schedule at its first step).
  """

  def __init__(self, student, teacher, decom_low, decom_high,
               config: ml_collections.ConfigDict, lr: float):
    self.student, self.teacher = student, teacher
    self.decom_low, self.decom_high = decom_low, decom_high
    for m in (teacher, decom_low, decom_high):
      m.requires_grad_(False)
    self.loss_cfg = loss_config(config)
    o = config.optim
    if o.get('grad_clip_norm'):
      raise ValueError('grad_clip_norm is not implemented in the torch step.')
    self.params = [p for p in student.parameters() if p.requires_grad]
    self.opt = torch.optim.AdamW(self.params, lr=lr, betas=(o.b1, o.b2),
                                 eps=o.eps, weight_decay=o.weight_decay,
                                 foreach=True)
    self.ema = [p.detach().clone() for p in self.params]
    self.ema_decay = o.ema_decay

  def loss(self, lq, gt, randoms):
    return torch_twin.student_loss(
        self.student, self.teacher, self.decom_low, self.decom_high, lq, gt,
        randoms, phase=2, config=self.loss_cfg)

  def __call__(self, lq, gt, randoms) -> dict[str, Any]:
    loss, metrics = self.loss(lq, gt, randoms)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in self.params if p.grad is not None]
    # pylint: disable=protected-access
    norms = torch._foreach_norm(grads)
    l2_grads = torch.linalg.vector_norm(torch.stack(norms))
    self.opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(self.ema, self.params, 1.0 - self.ema_decay)
    # pylint: enable=protected-access
    return dict(metrics, loss=loss.detach(), l2_grads=l2_grads)
