"""IR-Flow as a :class:`restorect_jax.methods.base.Method`.

One phase (``'main'``), Adam with the multistep schedule, the ema-pytorch
EMA schedule, no frozen networks. ``config.irflow`` holds the method's
switches (spec irflow.md §6–§7).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from restorect_jax.core import optim
from restorect_jax.core.train_step import Phase
from restorect_jax.inference.predictor import Predictor
from restorect_jax.methods.irflow import predictor as predictor_lib
from restorect_jax.methods.irflow import steps
from restorect_jax.methods.restorect.method import module_dtypes
from restorect_jax.models import Model
from restorect_jax.models import init_variables

Config = ml_collections.ConfigDict
EVAL_WEIGHTS = ('ema', 'online')


class IRFlow:
  """Pixel-space rectified flow from the degraded to the clean image."""

  name = 'irflow'

  def models(self, config: Config, *, training: bool = False
             ) -> dict[str, nn.Module]:
    name = 'irflow_base' if config.irflow.base else 'irflow'
    kw = module_dtypes(config, training=training)
    kw['attention'] = config.model.get('attention', 'folded')
    return {'irflow': Model(name, config.model.variant, **kw)}

  def frozen(self, config: Config, workdir: str) -> dict[str, Any]:
    del config, workdir
    return {}

  def provenance(self, config: Config) -> None:
    del config

  def init(self, config: Config, models: dict[str, nn.Module],
           frozen: dict[str, Any]) -> dict[str, Any]:
    del frozen
    img = jnp.zeros((1, 32, 32, 3), jnp.float32)
    args = (img,) if config.irflow.base else (img, jnp.zeros((1,), jnp.int32))
    return {'model': init_variables(models['irflow'], config.seed,
                                    *args)['params']}

  def optimizers(self, config: Config, params: dict[str, Any]):
    sch = config.schedule
    schedules = {'main': optim.multistep(config.optim.lr, sch.milestones,
                                         sch.gamma)}
    return {'main': optim.adamw(schedules['main'], config.optim,
                                params)}, schedules

  def phases(self, config: Config, models: dict[str, nn.Module],
             schedules) -> dict[str, Phase]:
    loss = functools.partial(steps.irflow_loss, model=models['irflow'],
                             config=config)
    draw = functools.partial(steps.draw, config=config)
    return {'main': Phase('main', loss, steps.irflow_ema(config),
                          schedules['main'], draw=draw)}

  def phase(self, config: Config, step: int) -> str:
    del config, step
    return 'main'

  def eval_weights(self, config: Config) -> str:
    """EMA by default; the reference evaluates the online weights
    (``irflow.eval_params='online'``)."""
    which = config.irflow.eval_params
    if which not in EVAL_WEIGHTS:
      raise ValueError(f'config.irflow.eval_params must be one of '
                       f'{EVAL_WEIGHTS}, got {which!r}.')
    return which

  def deploy_frozen(self, config: Config, workdir: str) -> dict[str, Any]:
    del config, workdir
    return {}

  def predictor(self, config: Config, params: dict[str, Any],
                frozen: dict[str, Any], info: dict[str, Any]) -> Predictor:
    del frozen
    c = config.irflow
    return predictor_lib.irflow_predictor(
        params['model'], model=self.models(config)['irflow'], info=info,
        channel_order=c.channel_order, sampler=c.sampler, base=c.base,
        default_steps=config.rf_steps)


METHOD = IRFlow()
