"""Unpaired test sets: DICM, LIME, MEF, NPE, VV (low-light) and fundus.

These sets have no ground truth. Records are ``{'lq', 'name'}`` only —
:func:`restorect_jax.datasets.data_source` returns sources without a
``'gt'`` key unless asked for ``gt_from_lq=True``, which copies the input
into ``gt`` the way the RestoRect evaluation scored these sets (against
their own inputs, spec ``restorect.md`` §6.1). One split, ``test``.

Layouts: the five low-light sets are usually distributed together as one
folder per set; each builder config reads its own sub-folder of the manual
folder (only that one has to exist). Fundus is the EyeQ ``sample`` folder
RestoRect used (``eyeq/dataset/sample``, 8 images).
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from restorect_jax.datasets import base

_LLIE_TREE = """\
unpaired/                   <- --manual_dir (each config reads its folder)
  DICM/*                    config dicm (RestoRect scored 44 images)
  LIME/*                    config lime (10)
  MEF/*                     config mef  (79)
  NPE/*                     config npe  (75)
  VV/*                      config vv   (24)"""

_FUNDUS_TREE = """\
eyeq/                       <- --manual_dir
  sample/*.jpeg             fundus photographs (RestoRect scored 8)"""

_SETS = {'dicm': 'DICM', 'lime': 'LIME', 'mef': 'MEF', 'npe': 'NPE',
         'vv': 'VV'}


class UnpairedLlie(base.FolderBuilder):
  """Unpaired low-light test sets (no ground truth): one config per set."""

  name = 'unpaired_llie'
  KIND = 'unpaired'
  TREE = _LLIE_TREE
  SPLIT_RULE = 'test = every image of the set folder'
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=config, description=f'{folder}/ images')
      for config, folder in _SETS.items()
  ]

  def _split_specs(self):
    return {'test': base.FolderSplit(_SETS[self.builder_config.name], None,
                                     key='lq_only')}


class Fundus(base.FolderBuilder):
  """EyeQ fundus sample images (no ground truth)."""

  name = 'fundus'
  KIND = 'unpaired'
  TREE = _FUNDUS_TREE
  HOMEPAGE = 'https://github.com/HzFu/EyeQ'
  SPLIT_RULE = 'test = every image of sample/'
  SPLITS = {'test': base.FolderSplit('sample', None, key='lq_only')}
