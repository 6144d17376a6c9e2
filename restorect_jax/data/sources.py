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
      demo_data.make_demo_pairs(root, seed=config.seed)
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
  return source


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
