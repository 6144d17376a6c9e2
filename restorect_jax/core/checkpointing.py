"""Orbax checkpoints of a training run: state, data-iterator position, metadata.

One ``CheckpointManager`` per run under ``<workdir>/checkpoints/<step>/`` with
three items: ``state`` (step, params, EMA params, optimizer states, rng),
``data`` (the grain iterator's state, JSON) and ``metadata`` (the resolved
config, the teacher checkpoint's path and hash). Orbax finalises each step
directory atomically (written under a temporary name, then renamed), so a
run killed mid-save leaves the previous checkpoint intact.

Integrity: once a step's files are final (Orbax saves asynchronously; the
digests are taken after ``wait_until_finished``, when the next save starts
or the run closes), the SHA-256 of each is recorded in
``<workdir>/checkpoint_digests.json``. Every restore checks them first: a
damaged file is one error line naming the step and the file. A resumed run
falls back to the newest good step (:meth:`Checkpointer.restore_latest_good`);
inference refuses the damaged step. Steps saved before digests existed (or
the last step of a run killed before its next save) load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from restorect_jax.core import checkpoint_io
from restorect_jax.core.train_state import TrainState

_ITEMS = ('state', 'data', 'metadata')

DIGESTS = 'digests.json'  # per step: {relative file path: SHA-256}
DAMAGED = 'checkpoints_damaged'  # beside checkpoints/: set-aside steps

CheckpointIntegrityError = checkpoint_io.CheckpointIntegrityError


def _digest_path(directory: str) -> str:
  return os.path.join(os.path.dirname(os.path.abspath(directory)),
                      'checkpoint_' + DIGESTS)


def _read_digests(directory: str) -> dict[str, dict[str, str]]:
  path = _digest_path(directory)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (ValueError, OSError) as e:
    raise CheckpointIntegrityError(
        f'{path}: unreadable checkpoint digests ({e}); expected the JSON '
        'written with the checkpoints.') from e


def verify(directory: str, step: int) -> None:
  """Checks the files of checkpoint ``step`` against their digests.

  Checkpoints saved before digests were recorded pass (nothing to check).

  Raises:
    CheckpointIntegrityError: one line naming the step and the file.
  """
  want = _read_digests(directory).get(str(step))
  if want is not None:
    checkpoint_io.check_digests(os.path.join(directory, str(step)), want,
                                f'Checkpoint step {step}')


def _unreadable(directory: str, step: int, e: Exception
                ) -> CheckpointIntegrityError:
  first = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return CheckpointIntegrityError(
      f'Checkpoint step {step}: {os.path.join(directory, str(step))} cannot '
      f'be read ({type(e).__name__}: {first[:300]}).')


def provenance(metadata: dict[str, Any]) -> dict[str, Any] | None:
  """What a run's metadata records about its inputs (``Method.provenance``).

  Checkpoints written before the key was generic hold it as ``'teacher'``.
  """
  return metadata.get('provenance', metadata.get('teacher'))


class Checkpointer:
  """Saves (asynchronously) and restores a run; keeps the last
  ``max_to_keep`` steps and a SHA-256 of every file of each."""

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=_ITEMS,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=True))
    self._unhashed: list[int] = []

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: TrainState, data_state: dict[str, Any],
           metadata: dict[str, Any]) -> None:
    """Starts saving ``step``; returns once the arrays are on the host.

    The files are written in the background; their digests are recorded
    when the next save starts or at :meth:`close`.
    """
    self._record_digests()
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state.to_dict()),
        data=ocp.args.JsonSave(data_state),
        metadata=ocp.args.JsonSave(metadata)), force=True)
    self._unhashed.append(step)

  def _record_digests(self) -> None:
    self.manager.wait_until_finished()
    if not self._unhashed or jax.process_index() != 0:
      self._unhashed = []
      return
    digests = _read_digests(self.directory)
    kept = {str(s) for s in self.all_steps()}
    digests = {k: v for k, v in digests.items() if k in kept}
    for step in self._unhashed:
      if str(step) in kept:
        digests[str(step)] = checkpoint_io.file_digests(
            os.path.join(self.directory, str(step)))
    self._unhashed = []
    checkpoint_io.write_json_atomic(_digest_path(self.directory), digests)

  def restore(self, state: TrainState, step: int | None = None
              ) -> tuple[TrainState, dict[str, Any], dict[str, Any]]:
    """Restores into the structure of ``state`` (keeps optax types);
    verifies the step's digests first.

    Raises:
      CheckpointIntegrityError: a damaged file (named) or unreadable step.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    verify(self.directory, step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state.to_dict())
    try:
      r = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract),
          data=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      # Orbax / TensorStore raise many types for damaged files.
      raise _unreadable(self.directory, step, e) from e
    return state.from_dict(r['state']), r['data'], r['metadata']

  def restore_latest_good(self, state: TrainState, metadata: dict[str, Any]
                          ) -> tuple[TrainState, dict[str, Any] | None]:
    """The newest checkpoint that verifies and loads, else ``state``.

    A damaged checkpoint is reported in one warning line, moved to
    ``<workdir>/checkpoints_damaged/<step>`` (so the resumed run can save
    that step again) and the previous one is tried: a resumed run never
    stops on a damaged latest save.

    Returns:
      ``(state, data-iterator state or None when starting fresh)``.
    """
    damaged = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        restored, data_state, meta = self.restore(state, step)
      except Exception as e:  # pylint: disable=broad-except
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        logging.warning('%s Falling back to the previous checkpoint.',
                        first[:400])
        damaged.append(step)
        continue
      now, then = provenance(metadata), provenance(meta)
      if now and then and now.get('sha256') != then.get('sha256'):
        logging.warning('The checkpoint this run was built from changed '
                        'since it started (then %s, now %s).', then, now)
      self._set_aside(damaged)
      if damaged:
        logging.warning('Resumed from checkpoint step %d.', step)
      else:
        logging.info('Resumed from step %d.', step)
      return restored, data_state
    self._set_aside(damaged)
    if damaged:
      logging.warning('No usable checkpoint in %s: starting from scratch.',
                      self.directory)
    return state, None

  def _set_aside(self, steps: list[int]) -> None:
    """Moves damaged steps out of the manager's directory."""
    if not steps:
      return
    if jax.process_index() == 0:
      aside = os.path.join(os.path.dirname(self.directory), DAMAGED)
      os.makedirs(aside, exist_ok=True)
      digests = _read_digests(self.directory)
      for step in steps:
        dest = os.path.join(aside, f'{step}-{int(time.time())}')
        shutil.move(os.path.join(self.directory, str(step)), dest)
        digests.pop(str(step), None)
        logging.warning('Damaged checkpoint step %d moved to %s.', step, dest)
      checkpoint_io.write_json_atomic(_digest_path(self.directory), digests)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices('checkpoints_set_aside')
    self.manager.reload()

  def close(self) -> None:
    self._record_digests()
    self.manager.close()


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def _open(path: str, step: int | None) -> tuple[Any, int]:
  """A CheckpointManager on a run's checkpoints and the step to read."""
  d = path if os.path.basename(os.path.normpath(path)) == 'checkpoints' else (
      checkpoint_dir(path))
  if not os.path.isdir(d):
    raise FileNotFoundError(f'No checkpoints directory at {d}.')
  mgr = ocp.CheckpointManager(d, item_names=_ITEMS)
  step = mgr.latest_step() if step is None else step
  if step is None:
    mgr.close()
    raise FileNotFoundError(f'No checkpoint saved in {d}.')
  return mgr, step


def load_params(path: str, *, which: str = 'ema_params',
                step: int | None = None) -> tuple[Any, dict[str, Any]]:
  """Loads params (EMA by default) of a run, without its optimizer.

  Args:
    path: a run's workdir, or its ``checkpoints`` directory.
    which: ``'ema_params'`` or ``'params'``.
    step: a step, or the latest.

  Returns:
    ``(params, metadata)``.
  """
  mgr, step = _open(path, step)
  try:
    verify(str(mgr.directory), step)
    r = mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), metadata=ocp.args.JsonRestore()))
  except CheckpointIntegrityError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # Orbax / TensorStore raise many types for damaged files.
    raise _unreadable(str(mgr.directory), step, e) from e
  finally:
    mgr.close()
  return r['state'][which], dict(r['metadata'], step=step)


def load_metadata(path: str, *, step: int | None = None) -> dict[str, Any]:
  """The JSON metadata (config, provenance) of a run's checkpoint, and its
  ``step``, without reading any array."""
  mgr, step = _open(path, step)
  try:
    r = mgr.restore(step, args=ocp.args.Composite(
        metadata=ocp.args.JsonRestore()))
  except Exception as e:  # pylint: disable=broad-except
    raise _unreadable(str(mgr.directory), step, e) from e
  finally:
    mgr.close()
  return dict(r['metadata'], step=step)


def tree_hash(path: str) -> str:
  """SHA-256 over the files of a directory (or one file), sorted by name."""
  h = hashlib.sha256()
  paths = [path] if os.path.isfile(path) else sorted(
      os.path.join(root, f) for root, _, files in os.walk(path)
      for f in files)
  for p in paths:
    h.update(os.path.relpath(p, path).encode())
    with open(p, 'rb') as f:
      for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
  return h.hexdigest()
