"""Predictors from a training run or from converted / PyTorch weights.

:func:`from_workdir` reads a run's checkpoint (EMA weights by default, its
digests verified) and asks the run's method for its predictor — the same
one training evaluation used. :func:`from_weights` builds one from a Flax
directory written by ``python -m restorect_jax.convert`` or a PyTorch
``.pth`` / ``.npz`` state dict converted on the fly (never unpickled).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from restorect_jax import convert
from restorect_jax import methods
from restorect_jax.core import checkpoint_io
from restorect_jax.core import checkpointing
from restorect_jax.inference.predictor import Predictor
from restorect_jax.models import Model

WEIGHT_MODELS = ('interface', 'irflow', 'irflow_base')


def from_workdir(workdir: str, *, which: str = 'ema',
                 step: int | None = None) -> Predictor:
  """The predictor of a training run.

  Args:
    workdir: the run's ``--workdir``.
    which: ``'ema'`` or ``'online'`` weights.
    step: a checkpoint step (default: the latest).
  """
  if which not in ('ema', 'online'):
    raise ValueError(f"which must be 'ema' or 'online', got {which!r}.")
  params, meta = checkpointing.load_params(
      workdir, which='ema_params' if which == 'ema' else 'params', step=step)
  if 'config' not in meta:
    raise ValueError(f'{workdir}: the checkpoint metadata holds no config; '
                     'is this a restorect_jax training run?')
  config = ml_collections.ConfigDict(meta['config'])
  method = methods.for_config(config)
  ckpt = os.path.join(checkpointing.checkpoint_dir(workdir),
                      str(meta['step']))
  info = {'source': os.path.abspath(workdir), 'step': meta['step'],
          'weights': which, 'sha256': checkpointing.tree_hash(ckpt),
          'method': method.name, 'stage': config.get('stage')}
  return method.predictor(config, params,
                          method.deploy_frozen(config, workdir), info)


def _load_weights(path: str, model_name: str, variant: str,
                  overrides: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                         dict[str, Any]]:
  """Variables and their metadata from a Flax dir or a state-dict file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'Weights not found: {path}')
  if os.path.isdir(path):
    meta = checkpoint_io.load_metadata(path)
    if meta.get('model') and meta['model'] != model_name:
      raise ValueError(f'{path} holds {meta["model"]!r} weights, not '
                       f'{model_name!r}.')
    return checkpoint_io.load_variables(path), meta
  sd = convert.load_state_dict(path)
  preset = convert.PRESETS[model_name]
  missing = tuple(preset.get('allow_missing', ()))
  template = convert.template_for(model_name, variant, overrides,
                                  concrete=bool(missing))
  variables = convert.torch_to_flax(
      sd, template, allow_unmapped=preset.get('allow_unmapped', ()),
      allow_missing=missing)
  return variables, {'model': model_name, 'variant': variant,
                     'overrides': dict(overrides)}


def from_weights(model_name: str, weights: str, *, variant: str = 'default',
                 overrides: Mapping[str, Any] | None = None,
                 decom: str = '', channel_order: str = 'bgr',
                 sampler: str = 'euler') -> Predictor:
  """A predictor from converted or PyTorch weights.

  Args:
    model_name: ``'interface'`` (RestoRect, deployed student) or
      ``'irflow'`` / ``'irflow_base'``.
    weights: a Flax directory (``restorect_jax.convert`` output) or a
      ``.pth`` / ``.npz`` state dict.
    variant: model size (ignored when the directory's metadata names one).
    overrides: model keyword overrides (e.g. ``layer_norm_type``).
    decom: RestoRect only: ``Dl`` weights (Reti-Diff ``init_low.pth`` or a
      converted directory). Required for RestoRect.
    channel_order: IR-Flow only: ``'bgr'`` for weights trained with the
      reference code, ``'rgb'`` otherwise.
    sampler: IR-Flow sampler (``euler``, ``heun``, ``standard_euler``).
  """
  from restorect_jax.methods.irflow import predictor as irflow_pred  # pylint: disable=g-import-not-at-top
  from restorect_jax.methods.restorect import predictor as restorect_pred  # pylint: disable=g-import-not-at-top
  if model_name not in WEIGHT_MODELS:
    raise ValueError(f'Cannot restore with {model_name!r} weights; use one '
                     f'of {", ".join(WEIGHT_MODELS)}.')
  if model_name == 'interface' and not decom:
    raise ValueError('RestoRect needs the DecomNet Dl weights: pass --decom '
                     '(Reti-Diff init_low.pth, or a converted directory).')
  if model_name != 'interface':
    irflow_pred.check_sampler(sampler)
  overrides = dict(overrides or {})
  variables, meta = _load_weights(weights, model_name, variant, overrides)
  variant = meta.get('variant', variant)
  overrides = dict(meta.get('overrides') or overrides)
  info = {'source': os.path.abspath(weights), 'model': model_name,
          'variant': variant, 'sha256': checkpointing.tree_hash(weights)}
  model = Model(model_name, variant, **overrides)
  if model_name != 'interface':
    return irflow_pred.irflow_predictor(
        variables['params'], model=model, info=info,
        channel_order=channel_order, sampler=sampler,
        base=model_name == 'irflow_base')
  dvars, _ = _load_weights(decom, 'decomnet', 'default', {})
  info['decom'] = {'source': os.path.abspath(decom),
                   'sha256': checkpointing.tree_hash(decom)}
  return restorect_pred.student_predictor(variables, dvars, model=model,
                                          info=info)


def describe(predictor: Predictor) -> str:
  """One line for logs and result files."""
  return f'{predictor.method} ' + json.dumps(predictor.info, sort_keys=True)
