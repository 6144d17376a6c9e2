"""Inference loops of the twins, under ``torch.no_grad``.

* :func:`irflow_euler_sample`: IR-Flow's Euler-1 sampler (spec irflow.md §5)
  with the reference's (w, k) tables: hand-tuned for N = 2, 3, 4, uniform
  ``(1/i, ⌊float32(i·1000/N)⌋)`` otherwise.
* :func:`restore_with_noise`: the deployed RestoRect pipeline (spec
  restorect.md §4): reflect-pad to ×8, ``Dl``, sample priors, G, crop, clamp.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from restorect_jax.torch_twin import layers

IRFLOW_T = 1000
_NONLINEAR_SCHEDULES = {
    2: ((0.8, 1000), (1.0, 200)),
    3: ((0.8, 1000), (0.5, 200), (1.0, 100)),
    4: ((0.5, 1000), (0.5, 500), (0.8, 250), (1.0, 50)),
}
PAD_MULTIPLE = 8


def irflow_euler_schedule(num_steps: int) -> tuple[tuple[float, int], ...]:
  """The (w, k) pairs of the reference's Euler-1 sampler, in order.

  N = 1: ((1.0, 1000),); N = 2, 3, 4: the hand-tuned tables; otherwise
  ``w = 1/i``, ``k = long(float32(i·1000/N))`` for i = N, …, 1 (the
  reference builds ``torch.tensor(i * h).long()`` from a Python float).
  """
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}.')
  if num_steps in _NONLINEAR_SCHEDULES:
    return _NONLINEAR_SCHEDULES[num_steps]
  h = IRFLOW_T / num_steps
  return tuple((1.0 / i, int(np.float32(i * h)))
               for i in range(num_steps, 0, -1))


@torch.no_grad()
def irflow_euler_sample(net: nn.Module, x_lq: torch.Tensor,
                        num_steps: int) -> torch.Tensor:
  """Euler-1 from ``x_lq`` (t = 1) to the clean estimate: ``x ← x − w·f``.

  Args:
    net: a ConditionalUNet twin, called as ``net(x, k)`` with ``k`` an int64
      tensor of shape (1,) broadcast over the batch, as the reference does.
    x_lq: (B, C, H, W) degraded image.
    num_steps: N ≥ 1.

  Returns:
    (B, C, H, W) restored image.
  """
  x = x_lq
  for w, k in irflow_euler_schedule(num_steps):
    kt = torch.full((1,), k, dtype=torch.long, device=x.device)
    x = x - w * net(x, kt)
  return x


@torch.no_grad()
def restore_with_noise(interface: nn.Module, decom_low: nn.Module,
                       lq: torch.Tensor, noise_rex: torch.Tensor,
                       noise_img: torch.Tensor, *, rf_steps: int = 5,
                       clip: bool = True) -> torch.Tensor:
  """Deployed RestoRect restoration with given prior noise.

  Mirrors ``restorect_jax.inference.restore_with_noise``.

  Args:
    interface: the Interface twin.
    decom_low: the DecomNet twin with the ``Dl`` weights.
    lq: (B, 3, H, W) in [0, 1], any H, W ≥ 8 (reflect-padded on the bottom
      and right to a multiple of 8, as the reference test does).
    noise_rex, noise_img: (B, 256) starting noise of the two flows.
    rf_steps: Euler steps (reference default 5).
    clip: clamp the output to [0, 1].

  Returns:
    (B, 3, H, W) restored image.
  """
  layers.check_image(lq, 3, 'restore input lq')
  padded, (h, w) = layers.reflect_pad_to_multiple(lq, PAD_MULTIPLE)
  r, l = decom_low(padded)
  out = interface(padded, torch.cat([r, l], dim=1), noise_rex, noise_img,
                  rf_steps)[:, :, :h, :w]
  return out.clamp(0.0, 1.0) if clip else out
