"""IR-Flow's training step pieces: the network closure, draws, loss, EMA.

The loss is ``(params, batch, frozen, draws) -> (loss, metrics)`` with the
draws made outside it (:func:`draw`), as every method's.
"""

from __future__ import annotations

from collections.abc import Callable
import functools

import flax.linen as nn
import jax
import ml_collections

from restorect_jax.core import optim
from restorect_jax.core.train_step import Metrics, f32
from restorect_jax.methods.irflow import losses


def irflow_velocity(model: nn.Module, params, *, channel_order: str,
                    base: bool = False) -> Callable:
  """``f(x, k)`` of the IR-Flow network on RGB data.

  ``channel_order='bgr'`` reproduces the reference, which feeds B, G, R
  tensors (spec §6): the network sees and predicts reversed channels. The
  flow is linear per channel, so flipping at the network boundary equals
  training on BGR data.
  """
  if channel_order not in ('rgb', 'bgr'):
    raise ValueError(f"channel_order must be 'rgb' or 'bgr', got "
                     f'{channel_order!r}.')
  flip = (lambda x: x[..., ::-1]) if channel_order == 'bgr' else (
      lambda x: x)
  variables = {'params': params}

  def f(x, k):
    y = model.apply(variables, flip(x)) if base else model.apply(
        variables, flip(x), k)
    return flip(y)
  return f


def draw(rng: jax.Array, batch: dict[str, jax.Array], *,
         config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """The step's draws (``losses.draw_training``) for this config."""
  c = config.irflow
  gt = batch['gt']
  return losses.draw_training(
      rng, gt.shape[0], gt.shape, noise_sigma=c.noise_sigma,
      msc=losses.runs_msc(base=c.base, msc_mode=c.msc_mode,
                          msc_weight=c.msc_weight))


def irflow_loss(params, batch, frozen, draws, *, model: nn.Module,
                config: ml_collections.ConfigDict
                ) -> tuple[jax.Array, Metrics]:
  """IR-Flow loss: MSE to the cumulative velocity + the MSC term (spec §3)."""
  del frozen
  c = config.irflow
  net = irflow_velocity(model, params['model'],
                        channel_order=c.channel_order, base=c.base)
  f = lambda x, k: f32(net(x, k))
  return losses.training_loss(
      f, batch['lq'], batch['gt'], draws, cumulative=c.cumulative,
      loss_kind=c.loss_kind, match_weight=c.match_weight,
      msc_mode=c.msc_mode, msc_weight=c.msc_weight,
      noise_sigma=c.noise_sigma, base=c.base)


def irflow_ema(config: ml_collections.ConfigDict) -> Callable:
  """The reference's ema_pytorch schedule (``optim.ema_pytorch_decay``)."""
  e = config.irflow.ema
  return functools.partial(
      optim.ema_pytorch_decay, beta=e.beta, update_every=e.update_every,
      update_after_step=e.update_after_step)
