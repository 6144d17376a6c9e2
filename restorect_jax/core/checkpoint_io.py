"""Weights-only checkpoints: a Flax variables tree in an Orbax directory.

Used by the converter and by inference for converted or exported weights.
Training runs use ``checkpointing.py`` (state, EMA, optimizer, data
iterator); this module holds plain variables plus a ``metadata.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

_ITEM = 'variables'
_META = 'restorect_metadata.json'


def save_variables(variables: Mapping[str, Any], path: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   overwrite: bool = False) -> None:
  """Saves ``variables`` under ``path`` (Orbax writes atomically).

  In a multi-process run every process calls this (Orbax saves
  collectively); process 0 alone manages the directory and metadata.
  """
  path = os.path.abspath(path)
  primary = jax.process_index() == 0
  if primary:
    if os.path.exists(path):
      if not overwrite:
        raise FileExistsError(f'{path} exists; pass overwrite=True.')
      shutil.rmtree(path)
    os.makedirs(path)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'save_variables:{path}')
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(os.path.join(path, _ITEM),
            {k: dict(v) for k, v in variables.items()})
  ckpt.wait_until_finished()
  if primary:
    with open(os.path.join(path, _META), 'w') as f:
      json.dump(dict(metadata or {}), f, indent=2, default=str)


def load_variables(path: str) -> dict[str, Any]:
  """Loads variables saved by :func:`save_variables` as NumPy arrays."""
  path = os.path.abspath(path)
  item = os.path.join(path, _ITEM)
  if not os.path.isdir(item):
    raise FileNotFoundError(
        f'{path} is not a restorect_jax weights directory (no {_ITEM}/).')
  restored = ocp.StandardCheckpointer().restore(item)
  return {k: _to_numpy(v) for k, v in restored.items()}


def load_metadata(path: str) -> dict[str, Any]:
  meta = os.path.join(os.path.abspath(path), _META)
  if not os.path.isfile(meta):
    return {}
  with open(meta) as f:
    return json.load(f)


def _to_numpy(tree):
  if isinstance(tree, Mapping):
    return {k: _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)
