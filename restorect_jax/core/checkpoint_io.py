"""Weights-only checkpoints: a Flax variables tree in an Orbax directory.

Used by the converter and by inference for converted or exported weights.
Training runs use ``checkpointing.py`` (state, EMA, optimizer, data
iterator); this module holds plain variables plus a ``metadata.json`` and
``restorect_digests.json``, the SHA-256 of every file written, checked on
load (directories written before digests existed load unchecked). The
digest helpers here are shared with training checkpoints.
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

from restorect_jax.core import hashing

_ITEM = 'variables'
_META = 'restorect_metadata.json'
_DIGESTS = 'restorect_digests.json'


class CheckpointIntegrityError(ValueError):
  """A checkpoint's files differ from the digests recorded when it was
  saved (damaged on disk or in transfer), or cannot be read at all."""


def file_digests(directory: str) -> dict[str, str]:
  """``{path relative to directory: SHA-256}`` of every file under it."""
  return {os.path.relpath(os.path.join(root, f), directory):
          hashing.file_sha256(os.path.join(root, f))
          for root, _, files in os.walk(directory) for f in sorted(files)}


def check_digests(directory: str, want: Mapping[str, str], what: str) -> None:
  """Compares the files under ``directory`` with the digests ``want``.

  Args:
    directory: the folder the relative paths of ``want`` start from.
    want: ``{relative path: SHA-256}`` recorded at save time.
    what: names the checkpoint in the error (e.g. ``'Checkpoint step 4'``).

  Raises:
    CheckpointIntegrityError: one line naming ``what`` and the first file
      that is missing or differs.
  """
  for rel, digest in sorted(want.items()):
    path = os.path.join(directory, rel)
    if not os.path.isfile(path):
      problem = 'is missing'
    elif hashing.file_sha256(path) != digest:
      problem = 'is damaged'
    else:
      continue
    raise CheckpointIntegrityError(
        f'{what}: {path} {problem} (its SHA-256 differs from the one '
        'recorded at save time); restore the file or use another '
        'checkpoint.')


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes ``obj`` as JSON to ``path`` through a temporary file."""
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def is_weights_dir(path: str) -> bool:
  """Whether ``path`` is a directory written by :func:`save_variables`."""
  return os.path.isdir(os.path.join(path, _ITEM))


def save_variables(variables: Mapping[str, Any], path: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   overwrite: bool = False) -> None:
  """Saves ``variables`` under ``path``, with metadata and file digests.

  The directory is written under ``<path>.partial`` and moved into place
  when complete, so ``path`` is never half written. With ``overwrite`` an
  existing weights directory (one this function wrote) is replaced; any
  other existing file or folder is refused, never deleted.

  In a multi-process run every process calls this (Orbax saves
  collectively); process 0 alone manages the directory and metadata.

  Raises:
    FileExistsError: ``path`` exists and may not be replaced.
  """
  path = os.path.abspath(path)
  partial = path + '.partial'
  primary = jax.process_index() == 0
  if primary:
    if os.path.lexists(path):
      if not overwrite:
        raise FileExistsError(f'{path} exists; pass overwrite=True.')
      if not is_weights_dir(path):
        raise FileExistsError(
            f'{path} exists and is not a weights directory written by '
            'restorect_jax; refusing to replace it.')
    if os.path.lexists(partial):
      shutil.rmtree(partial)  # left by an interrupted save
    os.makedirs(partial)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'save_variables:{path}')
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(os.path.join(partial, _ITEM),
            {k: dict(v) for k, v in variables.items()})
  ckpt.wait_until_finished()  # the digests below are of the final files
  if primary:
    with open(os.path.join(partial, _META), 'w', encoding='utf-8') as f:
      json.dump(dict(metadata or {}), f, indent=2, default=str)
    write_json_atomic(os.path.join(partial, _DIGESTS), {
        rel: digest for rel, digest in file_digests(partial).items()
        if rel != _DIGESTS})
    old = path + '.old'
    if os.path.lexists(path):
      os.replace(path, old)
    os.replace(partial, path)
    if os.path.lexists(old):
      shutil.rmtree(old)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'save_variables_done:{path}')


def verify_variables(path: str) -> None:
  """Checks a weights directory against its recorded digests (if any).

  Raises:
    CheckpointIntegrityError: a file is missing or damaged.
  """
  path = os.path.abspath(path)
  digests = os.path.join(path, _DIGESTS)
  if not os.path.isfile(digests):
    return  # written before digests were recorded
  try:
    with open(digests, encoding='utf-8') as f:
      want = json.load(f)
  except ValueError as e:
    raise CheckpointIntegrityError(
        f'{digests}: not valid JSON ({e}); expected the file digests '
        'written with the weights.') from e
  check_digests(path, want, f'Weights {path}')


def load_variables(path: str) -> dict[str, Any]:
  """Loads variables saved by :func:`save_variables` as NumPy arrays.

  Raises:
    FileNotFoundError: ``path`` is not a weights directory.
    CheckpointIntegrityError: damaged files (digests) or unreadable content.
  """
  path = os.path.abspath(path)
  item = os.path.join(path, _ITEM)
  if not os.path.isdir(item):
    raise FileNotFoundError(
        f'{path} is not a restorect_jax weights directory (no {_ITEM}/).')
  verify_variables(path)
  load_metadata(path)  # a damaged metadata file is reported by name
  try:
    restored = ocp.StandardCheckpointer().restore(item)
  except Exception as e:  # pylint: disable=broad-except
    # Orbax / TensorStore raise many types for damaged files.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise CheckpointIntegrityError(
        f'{item}: cannot be read as Orbax weights ({first[:300]}).') from e
  return {k: _to_numpy(v) for k, v in restored.items()}


def load_metadata(path: str) -> dict[str, Any]:
  """The metadata saved with the weights (``{}`` if there is none).

  Raises:
    ValueError: the metadata file is not a JSON object (names the file).
  """
  meta = os.path.join(os.path.abspath(path), _META)
  if not os.path.isfile(meta):
    return {}
  try:
    with open(meta, encoding='utf-8') as f:
      out = json.load(f)
  except ValueError as e:
    raise ValueError(f'{meta}: not valid JSON ({e}); expected the metadata '
                     'restorect_jax.convert writes.') from e
  if not isinstance(out, dict):
    raise ValueError(f'{meta}: expected a JSON object, got '
                     f'{type(out).__name__}.')
  return out


def _to_numpy(tree):
  if isinstance(tree, Mapping):
    return {k: _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)
