"""Building the twins and moving weights Flax ↔ twin ↔ reference checkpoints.

Names and variants are those of ``restorect_jax.models.Model``. Weights go
through ``restorect_jax.convert``: a Flax parameter path joined with ``.`` is
the PyTorch key, so ``convert.flax_to_torch(variables)`` is exactly the twin's
``state_dict()`` (aliases and shared-ResBlock duplicates included), loaded
with ``strict=True`` after a key/shape check that names every mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from restorect_jax import convert
from restorect_jax import models
from restorect_jax.torch_twin.decom_net import DecomNet
from restorect_jax.torch_twin.irflow_unet import ConditionalUNet
from restorect_jax.torch_twin.irflow_unet import UNet
from restorect_jax.torch_twin.restorect import Interface
from restorect_jax.torch_twin.restorect import Student
from restorect_jax.torch_twin.restorect import Teacher

RESTORECT_TWINS = {'teacher': Teacher, 'student': Student,
                   'interface': Interface}
IRFLOW_TWINS = {'irflow': ConditionalUNet, 'irflow_base': UNet}
NAMES = tuple(RESTORECT_TWINS) + ('decomnet',) + tuple(IRFLOW_TWINS)
# Compute-precision and activation-recompute knobs of the Flax modules; the
# twin takes ``module.to(dtype)`` / autocast and ``torch.utils.checkpoint``.
_FLAX_ONLY_OPTIONS = ('dtype', 'param_dtype', 'remat')
# Students converted from Flax ``params`` alone (no ``buffers`` collection)
# keep the twin's own time grids, which sampling never reads.
_BUFFER_KEYS = (r'^(img|rex)_diffusion\.timesteps_array$',)


def build(name: str, variant: str = 'default', **overrides) -> nn.Module:
  """Builds a randomly initialised twin (float32, train mode).

  Args:
    name: ``teacher``, ``student``, ``interface``, ``decomnet`` (RestoRect),
      ``irflow`` (ConditionalUNet) or ``irflow_base`` (time-free UNet).
    variant: a key of ``models.VARIANTS`` (RestoRect) or
      ``models.IRFLOW_VARIANTS``; ignored for ``decomnet``, as by
      ``models.Model``.
    **overrides: constructor arguments replacing the variant's (e.g.
      ``layer_norm_type='WithBias'``); ``dtype``, ``param_dtype`` and
      ``remat`` are Flax-only and refused.

  Returns:
    The twin module.

  Raises:
    ValueError: unknown name, variant or option.
  """
  bad = sorted(set(overrides) & set(_FLAX_ONLY_OPTIONS))
  if bad:
    raise ValueError(f'{bad} are Flax-only options: cast the twin with '
                     '.to(dtype) or autocast; recompute with '
                     'torch.utils.checkpoint.')
  if name == 'decomnet':
    return DecomNet(**overrides)
  if name in IRFLOW_TWINS:
    return IRFLOW_TWINS[name](**models.irflow_variant_kwargs(variant,
                                                             **overrides))
  if name not in RESTORECT_TWINS:
    raise ValueError(f'Unknown model {name!r}; known: {sorted(NAMES)}.')
  kwargs = models.variant_kwargs(variant, **overrides)
  return RESTORECT_TWINS[name](**kwargs)


def _matches(key: str, patterns: Iterable[str]) -> bool:
  return any(re.search(p, key) for p in patterns)


def _tied_groups(module: nn.Module) -> list[list[str]]:
  """State-dict keys that name one tensor (shared modules, aliases)."""
  groups: dict[int, list[str]] = {}
  for key, tensor in module.state_dict(keep_vars=True).items():
    groups.setdefault(id(tensor), []).append(key)
  return [keys for keys in groups.values() if len(keys) > 1]


def load_state_dict(module: nn.Module, sd: Mapping[str, Any], *,
                    what: str = 'model', allow_unmapped: Iterable[str] = (),
                    allow_missing: Iterable[str] = ()) -> nn.Module:
  """Loads a PyTorch-layout state dict into a twin, strictly.

  Every key of ``sd`` must be a key of ``module.state_dict()`` with the same
  shape and vice versa, and copies of one tied tensor (the RPE's shared
  ResBlocks, the students' ``*_diffusion`` aliases) must be equal; the
  error lists every problem. Keys matching ``allow_unmapped`` are dropped;
  module keys matching ``allow_missing`` keep their current values.

  Args:
    module: the twin.
    sd: ``{key: array or tensor}`` in PyTorch layout.
    what: a name for error messages (e.g. the file or model name).
    allow_unmapped: regexes of ``sd`` keys that may be dropped.
    allow_missing: regexes of module keys that may be absent.

  Returns:
    ``module``, loaded (``load_state_dict(strict=True)``).

  Raises:
    convert.ConversionError: listing unmapped, missing, mis-shaped and
      inconsistent keys.
  """
  own = module.state_dict()
  tensors = {}
  unmapped, misshaped = [], []
  for key, value in sd.items():
    if key not in own:
      if not _matches(key, allow_unmapped):
        unmapped.append(key)
      continue
    t = (value.detach() if isinstance(value, torch.Tensor) else
         torch.from_numpy(np.array(value, np.float32)))  # a writable copy
    if tuple(t.shape) != tuple(own[key].shape):
      misshaped.append(f'{key}: got {tuple(t.shape)}, expected '
                       f'{tuple(own[key].shape)}')
      continue
    tensors[key] = t.to(own[key].dtype)
  missing = []
  for key, value in own.items():
    if key in tensors or key in sd:
      continue
    if _matches(key, allow_missing):
      tensors[key] = value
    else:
      missing.append(key)
  inconsistent = []
  for keys in _tied_groups(module):
    present = [k for k in keys if k in tensors]
    for k in present[1:]:
      if not torch.equal(tensors[k], tensors[present[0]]):
        inconsistent.append(f'{k} differs from its tied copy {present[0]}')
  problems = []
  for title, items in (('unmapped (in the state dict, not in the twin)',
                        unmapped),
                       ('missing (in the twin, not in the state dict)',
                        missing),
                       ('mis-shaped', misshaped),
                       ('inconsistent tied copies', inconsistent)):
    if items:
      problems.append(f'{len(items)} {title}:\n  ' + '\n  '.join(
          sorted(items)))
  if problems:
    raise convert.ConversionError(
        f'State dict does not match the {what} twin '
        f'({type(module).__name__}).\n' + '\n'.join(problems))
  module.load_state_dict(tensors, strict=True)
  return module


def _as_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
  """``{'params': ...}`` from variables or a bare params tree."""
  if 'params' in variables:
    return dict(variables)
  return {'params': variables}


def from_flax(name: str, variant: str, variables: Mapping[str, Any],
              **overrides) -> nn.Module:
  """A twin holding converted Flax weights (float32, eval mode, CPU).

  Args:
    name: registry name (see :func:`build`).
    variant: the variant the variables were made with.
    variables: Flax variables (``{'params': ..., ['buffers': ...]}``) or a
      bare params tree. A student's ``buffers`` (the unused time grids) may
      be left out. ``interface`` also accepts a training student's
      variables, dropping ``G.decom.*`` (``convert.PRESETS['interface']``).
    **overrides: model options the variables were made with.

  Returns:
    The loaded twin in eval mode.

  Raises:
    convert.ConversionError: the weights do not fit the twin (every
      mismatched key is listed).
  """
  variables = _as_variables(variables)
  module = build(name, variant, **overrides)
  preset = convert.PRESETS.get(name, {})
  allow_missing = tuple(preset.get('allow_missing', ()))
  if 'buffers' not in variables:
    allow_missing += _BUFFER_KEYS
  sd = convert.flax_to_torch(variables)
  return load_state_dict(
      module, sd, what=f'{name}/{variant}',
      allow_unmapped=preset.get('allow_unmapped', ()),
      allow_missing=allow_missing).eval()


def to_flax(name: str, module: nn.Module, variant: str = 'default',
            **overrides) -> dict[str, Any]:
  """Flax variables (NumPy leaves) from a twin, via ``convert.torch_to_flax``.

  Args:
    name: registry name of the twin.
    module: the twin.
    variant: its variant.
    **overrides: model options it was built with.

  Returns:
    ``{'params': ..., ['buffers': ...]}``.
  """
  sd = {k: v.detach().cpu().float().numpy()
        for k, v in module.state_dict().items()}
  template = convert.template_for(name, variant, overrides)
  return convert.torch_to_flax(sd, template)


def load_reference(name: str, variant: str, source: str | Mapping[str, Any],
                   **overrides) -> nn.Module:
  """A twin holding reference PyTorch weights (eval mode).

  Args:
    name: registry name (see :func:`build`).
    variant: the variant matching the checkpoint's widths.
    source: a ``.pth``/``.pt``/``.npz`` path (read by
      ``convert.load_state_dict``: ``weights_only``, BasicSR/Reti-Diff
      wrappers and ``module.`` prefixes handled) or a state dict.
    **overrides: model options (e.g. ``layer_norm_type='WithBias'``).

  Returns:
    The loaded twin; the model's converter preset applies (e.g. published
    DecomNets lack ``anisotropic_diffusion.s``, which keeps 0.1).
  """
  if isinstance(source, str):
    what = source
    sd = convert.load_state_dict(source)
  else:
    what = f'{name}/{variant}'
    sd = convert.strip_data_parallel_prefix(dict(source))
  preset = convert.PRESETS.get(name, {})
  return load_state_dict(
      build(name, variant, **overrides), sd, what=what,
      allow_unmapped=preset.get('allow_unmapped', ()),
      allow_missing=preset.get('allow_missing', ())).eval()
