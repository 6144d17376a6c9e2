"""Inference-ready models for the evaluate and restore CLIs.

A :class:`Predictor` wraps a trained RestoRect student or IR-Flow network,
loaded from a training workdir (Orbax checkpoint; EMA weights by default)
or from converted / exported weights (a Flax directory written by
``python -m restorect_jax.convert``, or a PyTorch ``.pth`` / ``.npz`` state
dict converted on the fly). Inference is split in two so that tiles and
ensembles share image-level state:

* ``prepare(image, steps, rng)`` computes what depends on the whole image.
  For RestoRect that is the pair of 256-d priors: the condition encoders
  pool over the full (padded) image and the prior flows are sampled from
  ``rng``; every tile of the image is then restored with the same priors.
  IR-Flow needs nothing (its sampler is deterministic).
* ``run(batch, context, steps)`` restores a (B, h, w, 3) batch whose sides
  are multiples of ``predictor.multiple``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from restorect_jax import checkpoint_io
from restorect_jax import checkpointing
from restorect_jax import convert
from restorect_jax import inference
from restorect_jax import steps as steps_lib
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import layers

KINDS = ('restorect', 'irflow')


@dataclasses.dataclass
class Predictor:
  """A loaded model: ``prepare`` once per image, ``run`` per batch/tile.

  Attributes:
    kind: ``'restorect'`` or ``'irflow'``.
    multiple: input sides must be multiples of this.
    stochastic: whether outputs depend on the rng (seeds matter).
    info: provenance for result files (source path, step, hash, config).
    prepare_fn: ``(padded (1, H, W, 3), steps, rng) -> context``.
    run_fn: ``(batch (B, h, w, 3), context, steps) -> (B, h, w, 3)``.
  """
  kind: str
  multiple: int
  stochastic: bool
  info: dict[str, Any]
  prepare_fn: Callable[[jax.Array, int, jax.Array], Any]
  run_fn: Callable[[jax.Array, Any, int], jax.Array]

  def prepare(self, image: np.ndarray, *, steps: int,
              rng: jax.Array) -> Any:
    """Image-level context from an (H, W, 3) image (any size ≥ 2)."""
    padded, _ = layers.reflect_pad_to_multiple(
        jnp.asarray(image, jnp.float32)[None], self.multiple)
    return self.prepare_fn(padded, int(steps), rng)

  def run(self, batch: np.ndarray | jax.Array, context: Any, *,
          steps: int) -> np.ndarray:
    """Restores a (B, h, w, 3) batch (sides multiples of ``multiple``)."""
    b = jnp.asarray(batch, jnp.float32)
    h, w = b.shape[1:3]
    if h % self.multiple or w % self.multiple:
      raise ValueError(f'run() needs sides that are multiples of '
                       f'{self.multiple}, got {h}x{w}.')
    return np.asarray(self.run_fn(b, context, int(steps)))

  def restore(self, image: np.ndarray, *, steps: int,
              rng: jax.Array) -> np.ndarray:
    """Whole-image restore: reflect-pad, prepare, run, crop, clip."""
    context = self.prepare(image, steps=steps, rng=rng)
    padded, (h, w) = layers.reflect_pad_to_multiple(
        jnp.asarray(image, jnp.float32)[None], self.multiple)
    out = self.run(padded, context, steps=steps)[0, :h, :w]
    return np.clip(out, 0.0, 1.0)


def name_tag(name: str) -> int:
  """A non-negative int32 from a file's base name (CRC-32)."""
  return zlib.crc32(os.path.basename(name).encode()) & 0x7FFFFFFF


def image_rng(seed: int, name: str) -> jax.Array:
  """The per-image key: ``fold_in(key(seed), name_tag(name))``.

  Keyed by the file name (not the position in a folder), so an image gets
  the same noise whichever folder or order it is restored in.
  """
  return jax.random.fold_in(jax.random.key(seed), name_tag(name))


# ----------------------------------------------------------------------------
# RestoRect.
# ----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=('model', 'decom', 'steps'))
def _restorect_priors(params, lq, rng, *, model, decom, steps):
  r, l = decom.apply(params['decom_low'], lq)
  rex = jnp.concatenate([r, l], axis=-1)
  noise_rex, noise_img = inference.draw_prior_noise(rng, 1)
  return model.apply(params['interface'], lq, rex, noise_rex, noise_img,
                     steps, method='sample_priors')


@functools.partial(jax.jit, static_argnames=('model',))
def _restorect_g(params, batch, z_rex, z_img, *, model):
  b = batch.shape[0]
  z_rex = jnp.broadcast_to(z_rex, (b,) + z_rex.shape[1:])
  z_img = jnp.broadcast_to(z_img, (b,) + z_img.shape[1:])
  return model.apply(params['interface'], batch, z_rex, z_img,
                     method='restore_with_priors')


def restorect_predictor(interface: Mapping[str, Any],
                        decom_low: Mapping[str, Any], *,
                        model: nn.Module,
                        info: dict[str, Any]) -> Predictor:
  """A RestoRect predictor from Interface and DecomNet (``Dl``) variables."""
  params = {'interface': dict(interface), 'decom_low': dict(decom_low)}
  decom = DecomNet()

  def prepare(padded, steps, rng):
    return _restorect_priors(params, padded, rng, model=model, decom=decom,
                             steps=steps)

  def run(batch, context, steps):
    del steps
    z_rex, z_img = context
    return _restorect_g(params, batch, z_rex, z_img, model=model)

  return Predictor('restorect', inference.PAD_MULTIPLE, True, info, prepare,
                   run)


# ----------------------------------------------------------------------------
# IR-Flow.
# ----------------------------------------------------------------------------


_irflow_predict = jax.jit(
    steps_lib.irflow_predict,
    static_argnames=('model', 'num_steps', 'sampler', 'channel_order',
                     'base'))


def irflow_predictor(params: Mapping[str, Any], *, model: nn.Module,
                     info: dict[str, Any], channel_order: str = 'bgr',
                     sampler: str = 'euler', base: bool = False,
                     depth: int = 4) -> Predictor:
  """An IR-Flow predictor from ConditionalUNet (or UNet) params."""
  p = {'model': dict(params)}

  def run(batch, context, steps):
    del context
    return _irflow_predict(p, batch, model=model, num_steps=steps,
                           sampler=sampler, channel_order=channel_order,
                           base=base)

  return Predictor('irflow', 2**depth, False, info,
                   lambda padded, steps, rng: None, run)


# ----------------------------------------------------------------------------
# Loading.
# ----------------------------------------------------------------------------


def _config_from_metadata(meta: Mapping[str, Any]
                          ) -> ml_collections.ConfigDict:
  if 'config' not in meta:
    raise ValueError('The checkpoint metadata holds no config; is this a '
                     'restorect_jax training run?')
  return ml_collections.ConfigDict(meta['config'])


def _interface_params(student_params: Mapping[str, Any]) -> dict[str, Any]:
  """The deployed Interface's params: the student's minus G's decom head."""
  out = dict(student_params)
  out['G'] = {k: v for k, v in student_params['G'].items() if k != 'decom'}
  return out


def from_workdir(workdir: str, *, which: str = 'ema',
                 step: int | None = None) -> Predictor:
  """A predictor from a training run (S2 student or IR-Flow).

  Args:
    workdir: the run's ``--workdir``.
    which: ``'ema'`` or ``'online'`` weights.
    step: a checkpoint step (default: the latest).
  """
  if which not in ('ema', 'online'):
    raise ValueError(f"which must be 'ema' or 'online', got {which!r}.")
  params, meta = checkpointing.load_params(
      workdir, which='ema_params' if which == 'ema' else 'params', step=step)
  config = _config_from_metadata(meta)
  ckpt = os.path.join(checkpointing.checkpoint_dir(workdir),
                      str(meta['step']))
  info = {'source': os.path.abspath(workdir), 'step': meta['step'],
          'weights': which, 'sha256': checkpointing.tree_hash(ckpt),
          'stage': config.stage}
  m = config.model
  dtypes = dict(dtype=jnp.dtype(m.dtype), param_dtype=jnp.dtype(m.param_dtype))
  if config.stage == 'irflow':
    c = config.irflow
    name = 'irflow_base' if c.base else 'irflow'
    model = Model(name, m.variant, **dtypes)
    return irflow_predictor(params['model'], model=model, info=info,
                            channel_order=c.channel_order, sampler=c.sampler,
                            base=c.base, depth=model.depth)
  if config.stage != 's2':
    raise ValueError(
        f'{workdir} is a {config.stage!r} run; restoring needs an S2 '
        '(student) or IR-Flow run. The S1 teacher needs the ground truth.')
  decom = checkpoint_io.load_variables(os.path.join(workdir,
                                                    'frozen_decom_low'))
  model = Model('interface', m.variant, layer_norm_type=m.layer_norm_type,
                **dtypes)
  return restorect_predictor({'params': _interface_params(params['model'])},
                             decom, model=model, info=info)


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
  overrides = dict(overrides or {})
  variables, meta = _load_weights(weights, model_name, variant, overrides)
  variant = meta.get('variant', variant)
  overrides = dict(meta.get('overrides') or overrides)
  info = {'source': os.path.abspath(weights), 'model': model_name,
          'variant': variant, 'sha256': checkpointing.tree_hash(weights)}
  if model_name in ('irflow', 'irflow_base'):
    model = Model(model_name, variant, **overrides)
    return irflow_predictor(variables['params'], model=model, info=info,
                            channel_order=channel_order, sampler=sampler,
                            base=model_name == 'irflow_base',
                            depth=model.depth)
  if model_name != 'interface':
    raise ValueError(f'Cannot restore with {model_name!r} weights; use '
                     "'interface' (RestoRect) or 'irflow'.")
  if not decom:
    raise ValueError('RestoRect needs the DecomNet Dl weights: pass --decom '
                     '(Reti-Diff init_low.pth, or a converted directory).')
  dvars, _ = _load_weights(decom, 'decomnet', 'default', {})
  model = Model('interface', variant, **overrides)
  info['decom'] = {'source': os.path.abspath(decom),
                   'sha256': checkpointing.tree_hash(decom)}
  return restorect_predictor(variables, dvars, model=model, info=info)


def describe(predictor: Predictor) -> str:
  """One line for logs and result files."""
  return f'{predictor.kind} ' + json.dumps(predictor.info, sort_keys=True)
