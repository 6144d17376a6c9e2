"""TFDS builders for the RestoRect and IR-Flow benchmarks (nothing downloads).

Each builder reads a local folder laid out as the public download unpacks
(``BUILDERS[name].TREE``), writes lossless ``array_record`` records and a
metadata file with the split names and hashes; :func:`data_source` reads a
prepared split back as a random-access source for grain and
``input_pipeline.train_dataset`` / ``eval_dataset``. Importing this package
needs neither TensorFlow nor network access.

Example::

  from restorect_jax import datasets, input_pipeline
  datasets.prepare('lol_v1', manual_dir='/data/LOLdataset',
                   data_dir='/data/tfds')
  train = datasets.data_source('lol_v1', 'train', '/data/tfds')
  ds = input_pipeline.train_dataset(train, patch_size=128, batch_size=8,
                                    seed=0)

Names: ``lol_v1``, ``lol_v2_real``, ``lol_v2_syn``, ``lol_blur``,
``sid_sony``, ``sice``, ``baid``, ``uieb`` (configs ``restorect``, ``t90``),
``lsui``, ``fivek``, ``unpaired_llie`` (configs ``dicm``, ``lime``, ``mef``,
``npe``, ``vv``), ``fundus``, ``rain100l``, ``raindrop`` (configs
``default``, ``with_test_b``), ``denoise``. A config is selected as
``'name/config'``; without one the first config is used.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import tensorflow_datasets as tfds

from restorect_jax.datasets import backlit
from restorect_jax.datasets import base
from restorect_jax.datasets import fivek
from restorect_jax.datasets import folders
from restorect_jax.datasets import irflow_sets
from restorect_jax.datasets import lol
from restorect_jax.datasets import sice
from restorect_jax.datasets import sid
from restorect_jax.datasets import source
from restorect_jax.datasets import splits
from restorect_jax.datasets import uie
from restorect_jax.datasets import unpaired
from restorect_jax.datasets.folders import ManualDirError
from restorect_jax.datasets.folders import SplitMismatchError
from restorect_jax.datasets.source import KNOWN_OVERLAPS
from restorect_jax.datasets.source import DatasetOverlapWarning
from restorect_jax.datasets.source import RecordSource
from restorect_jax.datasets.source import check_overlap
from restorect_jax.datasets.source import find_overlaps
from restorect_jax.datasets.splits import SplitHashError

BUILDERS: dict[str, type[base.RestorationBuilder]] = {
    cls.name: cls for cls in (
        lol.LolV1, lol.LolV2Real, lol.LolV2Syn, lol.LolBlur, sid.SidSony,
        sice.Sice, backlit.Baid, uie.Uieb, uie.Lsui, fivek.Fivek,
        unpaired.UnpairedLlie, unpaired.Fundus, irflow_sets.Rain100l,
        irflow_sets.Raindrop, irflow_sets.Denoise)
}

__all__ = [
    'BUILDERS', 'DatasetOverlapWarning', 'KNOWN_OVERLAPS', 'ManualDirError',
    'RecordSource', 'SplitHashError', 'SplitMismatchError', 'builder',
    'check_overlap', 'data_source', 'find_overlaps', 'is_prepared',
    'prepare', 'splits',
]


def _parse(name: str) -> tuple[type[base.RestorationBuilder], str | None]:
  builder_name, _, config = name.partition('/')
  if builder_name not in BUILDERS:
    raise ValueError(f'Unknown dataset {builder_name!r}; known: '
                     f'{sorted(BUILDERS)}.')
  cls = BUILDERS[builder_name]
  configs = [c.name for c in (cls.BUILDER_CONFIGS or [])]
  if config and config not in configs:
    raise ValueError(f'{builder_name} has no config {config!r}; configs: '
                     f'{configs or "none"}.')
  if not config and configs:
    config = configs[0]
  return cls, config or None


def builder(name: str, data_dir: str | os.PathLike[str] | None = None
            ) -> base.RestorationBuilder:
  """The builder of ``'name'`` or ``'name/config'`` rooted at ``data_dir``."""
  cls, config = _parse(name)
  kwargs: dict[str, Any] = dict(file_format='array_record')
  if data_dir is not None:
    kwargs['data_dir'] = os.fspath(data_dir)
  if config:
    kwargs['config'] = config
  return cls(**kwargs)


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

