"""Orbax checkpoints of a training run: state, data-iterator position, metadata.

One ``CheckpointManager`` per run under ``<workdir>/checkpoints/<step>/`` with
three items: ``state`` (step, params, EMA params, optimizer states, rng),
``data`` (the grain iterator's state, JSON) and ``metadata`` (the resolved
config, the teacher checkpoint's path and hash). Orbax finalises each step
directory atomically (written under a temporary name, then renamed), so a
run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from restorect_jax.train_state import TrainState

_ITEMS = ('state', 'data', 'metadata')


class Checkpointer:
  """Saves and restores a run; keeps the last ``max_to_keep`` steps."""

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=_ITEMS,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: TrainState, data_state: dict[str, Any],
           metadata: dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state.to_dict()),
        data=ocp.args.JsonSave(data_state),
        metadata=ocp.args.JsonSave(metadata)), force=True)
    self.manager.wait_until_finished()

  def restore(self, state: TrainState, step: int | None = None
              ) -> tuple[TrainState, dict[str, Any], dict[str, Any]]:
    """Restores into the structure of ``state`` (keeps optax types)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state.to_dict())
    r = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore()))
    return state.from_dict(r['state']), r['data'], r['metadata']

  def close(self) -> None:
    self.manager.close()


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


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
  d = path if os.path.basename(os.path.normpath(path)) == 'checkpoints' else (
      checkpoint_dir(path))
  if not os.path.isdir(d):
    raise FileNotFoundError(f'No checkpoints directory at {d}.')
  mgr = ocp.CheckpointManager(d, item_names=_ITEMS)
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'No checkpoint saved in {d}.')
  r = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), metadata=ocp.args.JsonRestore()))
  mgr.close()
  return r['state'][which], dict(r['metadata'], step=step)


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
