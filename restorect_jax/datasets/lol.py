"""LOL family builders: LOL-v1, LOL-v2-Real, LOL-v2-Synthetic, LOL-Blur.

Record ``name`` is the low-light file name without extension (LOL-Blur:
``<video>_<frame>``, the reference's flattened naming).

Assumptions (spec ``restorect.md`` §5; layouts of the public zips):

* LOL-v1 ``eval15`` must hold exactly the 15 images of
  ``splits/lol_v1_eval15.txt``; LOL-v2-Real ``Test`` exactly
  ``low00690`` … ``low00789`` (``splits/lol_v2_real_test.txt``). Train
  folders are taken as found (485 / 689 / 900 pairs in the public zips).
* LOL-v2-Real pairs ``lowXXXXX.png`` with ``normalXXXXX.png`` (the role
  prefix is stripped for pairing); Synthetic uses one name in both folders.
* LOL-v1 ``our485`` contains most LOL-v2-Real ``Test`` images (same
  pixels): training on LOL-v1 and testing on LOL-v2-Real is contaminated.
  :func:`restorect_jax.datasets.check_overlap` detects and warns about it.
* LOL-Blur (LEDNet): ``{train,test}/low_blur/<video>/<frame>.png`` with
  targets in ``high_sharp_scaled/<video>/<frame>.png``; the other folders
  of the download (``low_blur_noise``, ``high_sharp_original``, ...) are
  not used.
"""

from __future__ import annotations

import os

from restorect_jax.datasets import base
from restorect_jax.datasets import folders

_LOL_V1_TREE = """\
LOLdataset/                 <- --manual_dir
  our485/low/*.png          485 low-light inputs (train)
  our485/high/*.png         same names, normal-light targets
  eval15/low/*.png          15 inputs: 1 22 23 55 79 111 146 179 493 547
                            665 669 748 778 780 (test)
  eval15/high/*.png         same names"""

_LOL_V2_TREE = """\
LOL-v2/                     <- --manual_dir (both LOL-v2 builders)
  Real_captured/Train/Low/low00001.png ...        689 pairs (train)
  Real_captured/Train/Normal/normal00001.png ...
  Real_captured/Test/Low/low00690.png ... low00789.png   100 pairs (test)
  Real_captured/Test/Normal/normal00690.png ...
  Synthetic/Train/Low/*.png      900 pairs, same names in Low/Normal
  Synthetic/Train/Normal/*.png
  Synthetic/Test/Low/*.png       100 pairs
  Synthetic/Test/Normal/*.png"""

_LOL_BLUR_TREE = """\
LOL-Blur/                   <- --manual_dir
  train/low_blur/<video>/<frame>.png           inputs (e.g. 0000/0000.png)
  train/high_sharp_scaled/<video>/<frame>.png  targets, same names
  test/low_blur/<video>/<frame>.png
  test/high_sharp_scaled/<video>/<frame>.png
  (other folders of the download are ignored)"""


class LolV1(base.FolderBuilder):
  """LOL-v1 (Wei et al. 2018): 485 train / 15 test low/normal-light pairs."""

  name = 'lol_v1'
  TREE = _LOL_V1_TREE
  HOMEPAGE = 'https://daooshee.github.io/BMVC2018website/'
  SPLIT_RULE = ('train = our485, test = eval15 (must equal '
                'splits/lol_v1_eval15.txt, in its order)')
  SPLITS = {
      'train': base.FolderSplit('our485/low', 'our485/high'),
      'test': base.FolderSplit('eval15/low', 'eval15/high',
                               names_file='lol_v1_eval15.txt'),
  }


class LolV2Real(base.FolderBuilder):
  """LOL-v2 Real_captured: 689 train / 100 test pairs (low ↔ normal)."""

  name = 'lol_v2_real'
  TREE = _LOL_V2_TREE
  HOMEPAGE = 'https://github.com/flyywh/SGM-Low-Light'
  SPLIT_RULE = ('train = Real_captured/Train, test = Real_captured/Test '
                '(must equal splits/lol_v2_real_test.txt); lowXXXXX pairs '
                'with normalXXXXX')
  SPLITS = {
      'train': base.FolderSplit('Real_captured/Train/Low',
                                'Real_captured/Train/Normal',
                                key='low_normal_prefix'),
      'test': base.FolderSplit('Real_captured/Test/Low',
                               'Real_captured/Test/Normal',
                               key='low_normal_prefix',
                               names_file='lol_v2_real_test.txt'),
  }


class LolV2Syn(base.FolderBuilder):
  """LOL-v2 Synthetic: 900 train / 100 test pairs (RestoRect scored 92)."""

  name = 'lol_v2_syn'
  TREE = _LOL_V2_TREE
  HOMEPAGE = 'https://github.com/flyywh/SGM-Low-Light'
  SPLIT_RULE = 'train = Synthetic/Train, test = Synthetic/Test'
  SPLITS = {
      'train': base.FolderSplit('Synthetic/Train/Low',
                                'Synthetic/Train/Normal'),
      'test': base.FolderSplit('Synthetic/Test/Low', 'Synthetic/Test/Normal'),
  }


class LolBlur(base.RestorationBuilder):
  """LOL-Blur (LEDNet): low-light + motion blur video frames, sharp targets."""

  name = 'lol_blur'
  TREE = _LOL_BLUR_TREE
  HOMEPAGE = 'https://shangchenzhou.com/projects/LEDNet/'
  SPLIT_RULE = ('train/test folders; frames of low_blur/<video> paired by '
                'name with high_sharp_scaled/<video>; record name '
                '<video>_<frame>')

  def _split_specs(self) -> dict[str, base.FolderSplit]:
    return {split: base.FolderSplit(f'{split}/low_blur',
                                    f'{split}/high_sharp_scaled',
                                    key='video_frame')
            for split in ('train', 'test')}

  def split_examples(self, root: str,
                     split: str) -> list[folders.Example]:
    self._check_split(split)
    spec = self._split_specs()[split]
    return _video_pairs(folders.require_dir(root, spec.lq, self.TREE),
                        folders.require_dir(root, spec.gt, self.TREE))

  def _examples(self, root: str) -> dict[str, list[folders.Example]]:
    folders.check_root(root, self.TREE)
    for spec in self._split_specs().values():  # Check every folder first.
      for rel in spec.folders().values():
        folders.require_dir(root, rel, self.TREE)
    return {split: self.split_examples(root, split)
            for split in self._split_specs()}


def _video_pairs(lq_root: str, gt_root: str) -> list[folders.Example]:
  """Pairs ``lq_root/<video>/<frame>`` with ``gt_root/<video>/<frame>``."""
  lq_videos = folders.subfolders(lq_root)
  gt_videos = folders.subfolders(gt_root)
  if not lq_videos:
    raise ValueError(f'{lq_root} has no video sub-folders.')
  lq_only = sorted(set(lq_videos) - set(gt_videos))
  gt_only = sorted(set(gt_videos) - set(lq_videos))
  if lq_only or gt_only:
    raise ValueError(
        f'Unmatched video folders: in {lq_root} only: '
        f'{folders.name_list(lq_only) or "-"}; in {gt_root} only: '
        f'{folders.name_list(gt_only) or "-"}.')
  examples = []
  for video in lq_videos:
    for ex in folders.pair_folders(os.path.join(lq_root, video),
                                os.path.join(gt_root, video)):
      examples.append(folders.Example(f'{video}_{ex.name}', ex.lq, ex.gt))
  return sorted(examples, key=lambda e: e.name)
