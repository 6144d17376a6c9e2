"""Dataset layouts and TFDS builders for RestoRect and IR-Flow (no download).

:mod:`~restorect_jax.datasets.registry` is the one table of dataset
layouts: every dataset name a config or CLI accepts (:func:`names`) has a
:class:`Layout` (split folders under a data dir laid out as the public
download unpacks, pairing rule, eval split, synthetic noise σ), and
:func:`folder_source` reads a split straight from those folders as a grain
source. Each builder reads the same folders (``BUILDERS[name].TREE``) with
the same pairing code, writes lossless ``array_record`` records and a
metadata file with the split names and hashes; :func:`data_source` reads a
prepared split back as a random-access source for grain and
``input_pipeline.train_dataset`` / ``eval_dataset``. Importing this package
needs neither TensorFlow nor network access.

Example::

  from restorect_jax import datasets
  from restorect_jax.data import input_pipeline
  # Straight from the unpacked download:
  train = datasets.folder_source('lol_v2_real', '/data/LOL-v2', 'train')
  # Or prepared once as records:
  datasets.prepare('lol_v1', manual_dir='/data/LOLdataset',
                   data_dir='/data/tfds')
  train = datasets.data_source('lol_v1', 'train', '/data/tfds')
  ds = input_pipeline.train_dataset(train, patch_size=128, batch_size=8,
                                    seed=0)

Builder names: ``lol_v1``, ``lol_v2_real``, ``lol_v2_syn``, ``lol_blur``,
``sid_sony``, ``sice``, ``baid``, ``uieb`` (configs ``restorect``, ``t90``),
``lsui``, ``fivek``, ``unpaired_llie`` (configs ``dicm``, ``lime``, ``mef``,
``npe``, ``vv``), ``fundus``, ``rain100l``, ``raindrop`` (configs
``default``, ``with_test_b``), ``denoise``. A config is selected as
``'name/config'``; without one the first config is used. Layout-only names
(no builder): ``derain`` (= ``rain100l``), ``dehaze``, ``deblur``, ``sr``,
``demo``, ``demo_denoise``.
"""

from __future__ import annotations

import os

from absl import logging
import tensorflow_datasets as tfds

from restorect_jax.datasets import base
from restorect_jax.datasets import folders
from restorect_jax.datasets import registry
from restorect_jax.datasets import source
from restorect_jax.datasets import splits
from restorect_jax.datasets.folders import ManualDirError
from restorect_jax.datasets.folders import SplitMismatchError
from restorect_jax.datasets.registry import BUILDERS
from restorect_jax.datasets.registry import FileSource
from restorect_jax.datasets.registry import Layout
from restorect_jax.datasets.registry import builder
from restorect_jax.datasets.registry import folder_source
from restorect_jax.datasets.registry import layout
from restorect_jax.datasets.registry import names
from restorect_jax.datasets.registry import pair_dirs
from restorect_jax.datasets.registry import paired_files
from restorect_jax.datasets.source import KNOWN_OVERLAPS
from restorect_jax.datasets.source import DatasetOverlapWarning
from restorect_jax.datasets.source import RecordSource
from restorect_jax.datasets.source import check_overlap
from restorect_jax.datasets.source import find_overlaps
from restorect_jax.datasets.splits import SplitHashError

__all__ = [
    'BUILDERS', 'DatasetOverlapWarning', 'FileSource', 'KNOWN_OVERLAPS',
    'Layout', 'ManualDirError', 'RecordSource', 'SplitHashError',
    'SplitMismatchError', 'builder', 'check_overlap', 'data_source',
    'find_overlaps', 'folder_source', 'is_prepared', 'layout', 'names',
    'pair_dirs', 'paired_files', 'prepare', 'registry', 'splits',
]


def is_prepared(name: str, data_dir: str | os.PathLike[str] | None = None
                ) -> bool:
  """Whether ``name`` has been prepared in ``data_dir``."""
  return builder(name, data_dir).is_prepared()


def prepare(
    name: str,
    manual_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    check_overlaps: bool = True,
) -> base.RestorationBuilder:
  """Builds ``name`` from the local folder ``manual_dir`` (never downloads).

  Args:
    name: ``'name'`` or ``'name/config'`` (see :data:`BUILDERS`).
    manual_dir: the unpacked public download (the builder's ``TREE``).
    data_dir: where the records go (TFDS default ``~/tensorflow_datasets``).
    overwrite: rebuild an already prepared dataset.
    check_overlaps: afterwards, warn about known train/test overlaps with
      datasets already prepared in ``data_dir``.

  Returns:
    The prepared builder.

  Raises:
    ManualDirError: ``manual_dir`` or a sub-folder the builder needs is
      missing (the message shows the expected tree).
    ValueError: unmatched or ambiguous names, a size mismatch, a folder that
      differs from a shipped split list, a corrupt or truncated image (an
      ``image_io.ImageReadError``); the message names the files.
  """
  b = builder(name, data_dir)
  manual_dir = os.fspath(manual_dir)
  folders.check_root(manual_dir, b.expected_tree())
  if overwrite or not b.is_prepared():
    mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if not overwrite
            else tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, try_download_gcs=False, download_mode=mode))
    b = builder(name, data_dir)
  else:
    logging.info('%s is already prepared in %s (overwrite=True rebuilds).',
                 name, b.data_dir)
  if check_overlaps:
    source.check_known_overlaps(name, data_dir, _load_if_prepared)
  return b


def _load_if_prepared(name, split, data_dir):
  return data_source(name, split, data_dir) if is_prepared(
      name, data_dir) else None


def data_source(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    min_size: int | None = None,
    expected_names_sha256: str | None = None,
    gt_from_lq: bool = False,
) -> RecordSource:
  """A prepared split as a random-access source (grain / input_pipeline).

  Args:
    name: ``'name'`` or ``'name/config'``.
    split: split name (``'train'``, ``'test'``, ``'test_grad'``, ...).
    data_dir: the TFDS data dir used by :func:`prepare`.
    min_size: if set, every image must be at least this large on both sides
      (e.g. the training patch); smaller ones are listed in a ``ValueError``.
      Without it the training pipeline mirror-pads small images.
    expected_names_sha256: if set, the split's recorded name-list SHA-256
      must equal it (pins a run to one split).
    gt_from_lq: unpaired sets only: copy ``lq`` into ``gt`` (how RestoRect
      scored them).

  Returns:
    A :class:`RecordSource`.

  Raises:
    FileNotFoundError: the dataset is not prepared in ``data_dir``.
    ValueError: unknown split, ``min_size`` or hash check failed.
  """
  b = builder(name, data_dir)
  if not b.is_prepared():
    raise FileNotFoundError(
        f'{name} is not prepared in {b.data_dir}. Run: python -m '
        f'restorect_jax.datasets.prepare --dataset={name} '
        f'--manual_dir=<unpacked download> --data_dir={data_dir or "<dir>"}')
  src = RecordSource(b, split, gt_from_lq=gt_from_lq)
  if expected_names_sha256 and src.names_sha256 != expected_names_sha256:
    raise ValueError(
        f'{src.label}: name list SHA-256 is {src.names_sha256}, expected '
        f'{expected_names_sha256}; this is not the split the run was '
        'pinned to.')
  if min_size:
    src.check_min_size(min_size)
  return src

