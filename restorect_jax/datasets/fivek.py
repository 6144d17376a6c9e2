"""MIT-Adobe FiveK builder, in the train/test input/target layout.

The original FiveK download is DNG files plus five experts' TIFF exports;
restoration papers (and RestoRect, ``options/trainS1_FIVEK.yml``) use a
pre-processed sRGB copy with ``{train,test}/{input,target}`` folders
(commonly 4500 / 500 pairs, expert C as target). That copy is what this
builder reads; which expert and resolution it holds is recorded by nothing
but the files themselves, so keep the copy's provenance with your results.
Pairs share a file stem (``a0001.jpg`` ↔ ``a0001.jpg`` / ``.png``).
"""

from __future__ import annotations

from restorect_jax.datasets import base

_TREE = """\
FiveK/                      <- --manual_dir
  train/input/*.jpg         sRGB inputs (e.g. a0001.jpg)
  train/target/*.jpg        expert-retouched targets, same stems
  test/input/*.jpg
  test/target/*.jpg"""


class Fivek(base.FolderBuilder):
  """MIT-Adobe FiveK (Bychkovsky et al. 2011), sRGB input/target copy."""

  name = 'fivek'
  TREE = _TREE
  HOMEPAGE = 'https://data.csail.mit.edu/graphics/fivek/'
  SPLIT_RULE = 'train = train/{input,target}, test = test/{input,target}'
  SPLITS = {
      split: base.FolderSplit(f'{split}/input', f'{split}/target')
      for split in ('train', 'test')
  }
