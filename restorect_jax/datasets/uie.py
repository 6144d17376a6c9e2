"""Underwater builders: UIEB and LSUI, with seeded splits drawn here.

Neither set ships an official train/test split. The rules
(:mod:`restorect_jax.datasets.splits`) draw from the **sorted input file
names** (with extension, as the reference script sorts them):

* ``restorect`` (default config of both): RestoRect's script —
  ``random.seed(42)``, ``random.shuffle``, first ``int(0.8 * n)`` train,
  the rest test (UIEB 890 → 712 / 178, as the reference's 178 test images).
* ``t90`` (UIEB only): the common 800/90 split; same permutation, the last
  90 are test (so T90 ⊂ the 80/20 test set). Papers' own T90 lists are
  unpublished and may differ.

The metadata records each split's names and SHA-256; compare it with
:func:`restorect_jax.datasets.splits.names_sha256` or pass
``expected_names_sha256`` to :func:`restorect_jax.datasets.data_source` to
pin a run to one split. Adding or removing one image changes both splits.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from restorect_jax.datasets import base
from restorect_jax.datasets import folders
from restorect_jax.datasets import splits as splits_lib

_UIEB_TREE = """\
UIEB/                      <- --manual_dir
  raw-890/*.png            890 underwater inputs
  reference-890/*.png      890 references, same names"""

_LSUI_TREE = """\
LSUI/                      <- --manual_dir
  input/*.jpg              underwater inputs
  GT/*.jpg                 references, same names"""

_RULES = {
    'restorect': ('RestoRect rule: random.seed(42); random.shuffle(sorted '
                  'input file names); first int(0.8 * n) train, rest test'),
    't90': ('UIEB 800/90: the seed-42 permutation of the sorted input file '
            'names; last 90 test, rest train'),
}


class _SplitConfig(tfds.core.BuilderConfig):
  """A named split rule."""


def _seeded_splits(rule: str, examples: list[folders.Example]
                   ) -> dict[str, list[folders.Example]]:
  by_file = {os.path.basename(e.lq): e for e in examples}
  if rule == 't90':
    train, test = splits_lib.uieb_t90_split(list(by_file))
  else:
    train, test = splits_lib.reference_split(list(by_file))
  pick = lambda files: sorted((by_file[f] for f in files),
                              key=lambda e: e.name)
  return {'train': pick(train), 'test': pick(test)}


class _SeededSplitBuilder(base.RestorationBuilder, skip_registration=True):
  """One folder pair, split by a seeded rule."""

  LQ = ''
  GT = ''

  def _split_rule(self) -> str:
    return _RULES[self.builder_config.name]

  def _split_specs(self) -> dict[str, base.FolderSplit]:
    # Both splits are drawn from one folder pair (paired by stem).
    return {split: base.FolderSplit(self.LQ, self.GT)
            for split in ('train', 'test')}

  def _examples(self, root: str) -> dict[str, list[folders.Example]]:
    folders.check_root(root, self.TREE)
    lq = folders.require_dir(root, self.LQ, self.TREE)
    gt = folders.require_dir(root, self.GT, self.TREE)
    return _seeded_splits(self.builder_config.name,
                          folders.pair_folders(lq, gt))


class Uieb(_SeededSplitBuilder):
  """UIEB (Li et al. 2019): 890 pairs; RestoRect 80/20 or common 800/90."""

  name = 'uieb'
  TREE = _UIEB_TREE
  LQ, GT = 'raw-890', 'reference-890'
  HOMEPAGE = 'https://li-chongyi.github.io/proj_benchmark.html'
  BUILDER_CONFIGS = [
      _SplitConfig(name='restorect', description=_RULES['restorect']),
      _SplitConfig(name='t90', description=_RULES['t90']),
  ]


class Lsui(_SeededSplitBuilder):
  """LSUI (Peng et al. 2023): RestoRect's seed-42 80/20 split."""

  name = 'lsui'
  TREE = _LSUI_TREE
  LQ, GT = 'input', 'GT'
  HOMEPAGE = ('https://github.com/LintaoPeng/'
              'U-shape_Transformer_for_Underwater_Image_Enhancement')
  BUILDER_CONFIGS = [
      _SplitConfig(name='restorect', description=_RULES['restorect']),
  ]
