"""Where a run's training and evaluation images come from.

``config.input`` names either a prepared TFDS dataset (``input.tfds.name``,
read with ``restorect_jax.datasets.data_source``), or folders laid out as
a public download under ``input.data_dir`` (``input.dataset``, looked up in
the dataset registry), or your own folders (``input.dataset='folder'`` with
``input.lq_dir`` / ``gt_dir`` / ``eval_lq_dir`` / ``eval_gt_dir``). The
``demo`` set is built on first use.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from restorect_jax.core import sharding
from restorect_jax.data import input_pipeline

Config = ml_collections.ConfigDict


def data_dir(config: Config, workdir: str) -> str:
  """``input.data_dir``; the demo set is built there (or in the workdir)."""
  inp = config.input
  root = inp.data_dir
  if inp.dataset in ('demo', 'demo_denoise'):
    from restorect_jax.data import demo_data  # pylint: disable=g-import-not-at-top
    root = root or os.path.join(workdir, 'demo_data')
    if jax.process_index() == 0:
      demo_data.make_demo_pairs(
          root, seed=config.seed,
          train_crops_per_image=inp.get('demo_crops', 4),
          train_photos=(tuple(inp.get('demo_photos', ()))
                        or demo_data.TRAIN_PHOTOS))
    sharding.sync_processes('demo_data')
  return root


def folder_source(config: Config, workdir: str, split: str) -> Any:
  """The paired files of ``split`` ('train' or 'test'), or None."""
  from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
  inp = config.input
  root = data_dir(config, workdir)
  if inp.dataset == 'folder':
    lq, gt = ((inp.lq_dir, inp.gt_dir) if split == 'train' else
              (inp.eval_lq_dir, inp.eval_gt_dir))
    if not lq:
      return None
    join = lambda p: p if not p or os.path.isabs(p) else os.path.join(
        root, p)
    return datasets.pair_dirs(
        join(lq), join(gt) or None,
        pairing='underscore_prefix' if inp.prefix_match else 'stem')
  return datasets.folder_source(inp.dataset, root, split)


def train_source(config: Config, workdir: str) -> Any:
  """The training records: a prepared TFDS split or paired folders."""
  inp = config.input
  if inp.tfds.name:
    from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
    return datasets.data_source(inp.tfds.name, inp.tfds.train_split,
                                inp.tfds.data_dir)
  source = folder_source(config, workdir, 'train')
  if source is None:
    raise ValueError('config.input names no training images '
                     '(input.lq_dir with input.dataset=folder).')
  cache_mb = inp.get('cache_mb', 0)
  return CachedSource(source, cache_mb * 2**20) if cache_mb else source


class CachedSource:
  """A record source that keeps decoded records in memory, up to a budget.

  Small training sets (the demo's few dozen pairs) are read every step;
  decoding the same PNGs again costs about a millisecond per file. Records are
  kept until ``max_bytes`` of arrays are held (later ones are read from
  the source every time) and each access returns fresh copies, so the
  pipeline sees exactly what the source returns. Worker processes (grain)
  each build their own cache. Other attributes come from the source.

  Args:
    source: a random-access source (``__len__``, ``__getitem__``).
    max_bytes: the most array bytes to keep.
  """

  def __init__(self, source: Any, max_bytes: int):
    self.source, self.max_bytes = source, int(max_bytes)
    self._cache: dict[int, dict[str, Any]] = {}
    self._bytes = 0

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    key = input_pipeline.check_index(index, len(self), 'records') % len(self)
    record = self._cache.get(key)
    if record is None:
      record = self.source[key]
      size = sum(v.nbytes for v in record.values()
                 if isinstance(v, np.ndarray))
      if self._bytes + size <= self.max_bytes:
        self._cache[key] = record
        self._bytes += size
    return {k: v.copy() if isinstance(v, np.ndarray) else v
            for k, v in record.items()}

  def __getattr__(self, name: str) -> Any:
    if name.startswith('__') or name in ('source', 'max_bytes', '_cache',
                                         '_bytes'):
      raise AttributeError(name)
    return getattr(self.source, name)

  def __getstate__(self) -> dict[str, Any]:
    return {'source': self.source, 'max_bytes': self.max_bytes}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__init__(state['source'], state['max_bytes'])

  def __repr__(self) -> str:
    return f'CachedSource({self.source!r}, max_bytes={self.max_bytes})'


def eval_records(config: Config, workdir: str) -> Any:
  """The eval split as re-iterable records (``lq``, ``gt``, ``name``), or
  None when the config has none."""
  inp = config.input
  if inp.tfds.name:
    if not inp.tfds.eval_split:
      return None
    from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
    source = datasets.data_source(inp.tfds.name, inp.tfds.eval_split,
                                  inp.tfds.data_dir)
  else:
    source = folder_source(config, workdir, 'test')
    if source is None:
      return None
  return input_pipeline.eval_dataset(
      source, batch_axis=False, resize=inp.eval_resize,
      resize_size=inp.eval_resize_size)
