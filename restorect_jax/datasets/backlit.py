"""BAID builder (backlit image enhancement).

RestoRect trains on ``BAID-train/resize_input`` → ``resize_gt`` and tests on
``BAID-test/resize_*`` ("resized" copies; 368 test pairs). The public
download's folder names are not pinned down in the reference, so each role
accepts two names, tried in order: ``resize_input`` then ``input`` for
inputs, ``resize_gt`` then ``gt`` for targets; the folder actually used is
recorded in the metadata (``splits.<split>.folders``). Pairs share a file
stem.
"""

from __future__ import annotations

from restorect_jax.datasets import base

_TREE = """\
BAID/                            <- --manual_dir
  BAID-train/resize_input/*.png  backlit inputs (or BAID-train/input/)
  BAID-train/resize_gt/*.png     targets, same stems (or BAID-train/gt/)
  BAID-test/resize_input/*.png   368 test inputs (or BAID-test/input/)
  BAID-test/resize_gt/*.png      (or BAID-test/gt/)"""


class Baid(base.FolderBuilder):
  """BAID backlit image dataset, train / test pairs."""

  name = 'baid'
  TREE = _TREE
  SPLIT_RULE = ('train = BAID-train, test = BAID-test; resize_* folders '
                'preferred over input/gt')
  SPLITS = {
      split: base.FolderSplit((f'{folder}/resize_input', f'{folder}/input'),
                              (f'{folder}/resize_gt', f'{folder}/gt'))
      for split, folder in (('train', 'BAID-train'), ('test', 'BAID-test'))
  }
