"""The rectified flow on the 256-d priors (spec restorect.md §2.6), in torch.

``VelocityPredictor`` is the velocity MLP; ``RectifiedFlow`` is the
reference's wrapper that holds the velocity net as ``model``, the condition
encoder as ``condition`` and the (unused by sampling) ``timesteps_array``
buffer, which is why the student state dict carries the aliases
``{img,rex}_diffusion.model.*`` / ``.condition.*``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from restorect_jax.torch_twin import layers

NUM_TIME_LABELS = 4


def time_labels(num_steps: int, num_labels: int = NUM_TIME_LABELS
                ) -> tuple[int, ...]:
  """Labels fed at each Euler step: ``int((1 - i/N)·(T - 1))`` in float64.

  N = 4 gives (3, 2, 1, 0), N = 5 gives (3, 2, 1, 1, 0).
  """
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}.')
  return tuple(int((1.0 - i / num_steps) * (num_labels - 1))
               for i in range(num_steps))


class _ResMLP(nn.Module):
  """The reference's ``ResMLP``: Linear → LeakyReLU(0.1), no residual."""

  def __init__(self, features: int):
    super().__init__()
    self.resmlp = nn.Sequential(nn.Linear(features, features),
                                nn.LeakyReLU(0.1))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.resmlp(x)


class VelocityPredictor(nn.Module):
  """``v = LReLU(L2(LReLU(L1(cat[c, t_idx / (10 T), x]))))``, slope 0.1.

  Keys ``resmlp.0.*`` (Linear 513→256) and ``resmlp.2.resmlp.0.*``.
  """

  def __init__(self, n_feats: int = 64, timesteps: int = NUM_TIME_LABELS):
    super().__init__()
    self.dim = 4 * n_feats
    self.timesteps = timesteps
    self.resmlp = nn.Sequential(
        nn.Linear(2 * self.dim + 1, self.dim), nn.LeakyReLU(0.1),
        _ResMLP(self.dim))

  def forward(self, x: torch.Tensor, t_idx: torch.Tensor,
              c: torch.Tensor) -> torch.Tensor:
    """Predicts the velocity.

    Args:
      x: (B, 256) state.
      t_idx: (B,) (or (1,) / scalar) time labels in [0, T - 1].
      c: (B, 256) condition.

    Returns:
      (B, 256) velocity.
    """
    b = x.shape[0]
    layers.check_prior(x, b, 'VelocityPredictor x', self.dim)
    layers.check_prior(c, b, 'VelocityPredictor c', self.dim)
    t = torch.as_tensor(t_idx, device=x.device).to(x.dtype).reshape(-1, 1)
    t = (t / (10.0 * self.timesteps)).expand(b, 1)
    return self.resmlp(torch.cat([c, t, x], dim=1))


class RectifiedFlow(nn.Module):
  """Holder of one flow: ``model`` (velocity), ``condition``, time grid."""

  def __init__(self, model: VelocityPredictor, condition: nn.Module,
               timesteps: int = NUM_TIME_LABELS):
    super().__init__()
    self.register_buffer('timesteps_array',
                         torch.linspace(0.0, 1.0, timesteps))
    self.model = model
    self.condition = condition


VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_sample(velocity_fn: VelocityFn, noise: torch.Tensor,
                 num_steps: int, num_labels: int = NUM_TIME_LABELS
                 ) -> torch.Tensor:
  """Explicit Euler from noise (t = 1) to the prior (t = 0).

  ``x ← x − (1/N)·v(x, t_idx)`` with the labels of :func:`time_labels`.
  Runs with whatever grad mode the caller set.

  Args:
    velocity_fn: ``(x (B, D), t_idx (B,) int64) -> v (B, D)``.
    noise: (B, D) starting noise.
    num_steps: N.
    num_labels: T.

  Returns:
    (B, D) sample.
  """
  x = noise
  b = noise.shape[0]
  for label in time_labels(num_steps, num_labels):
    t_idx = torch.full((b,), label, dtype=torch.long, device=noise.device)
    x = x - (1.0 / num_steps) * velocity_fn(x, t_idx)
  return x
