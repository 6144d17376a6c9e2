"""SICE builder: multi-exposure training scenes + SICE-Grad / SICE-Mix tests.

Layout as RestoRect uses it (``options/trainS1_SICE.yml``,
``options/test_SICE.yml``): training scenes ``Dataset/train/<scene>/`` hold
several exposures of one scene, the target is ``Dataset/label/<scene>.JPG``;
every exposure becomes its own record ``<scene>_<exposure stem>`` paired
with the scene's label (the reference's ``SICEDataset``). Evaluation uses
``SICE_Reshape`` as ground truth for the inputs in ``SICE_Grad`` or
``SICE_Mix`` (485 images each), paired by file stem.

Assumptions: an exposure has the size of its label (the input pipeline crops
both at one position; the reference resizes both to multiples of 32 first);
a scene folder without a label, a label without a scene folder and an empty
scene folder are errors (the reference skipped scenes without labels).
Hidden folders are ignored; scene names need not be numeric.
"""

from __future__ import annotations

import os

from restorect_jax.data import input_pipeline
from restorect_jax.datasets import base
from restorect_jax.datasets import folders

_TREE = """\
SICE/                           <- --manual_dir
  Dataset/train/<scene>/*.JPG   several exposures per scene (e.g. 1/1.JPG ...)
  Dataset/label/<scene>.JPG     one target per scene
  SICE_Reshape/*.JPG            test targets (485)
  SICE_Grad/*.JPG               test inputs, same stems as SICE_Reshape
  SICE_Mix/*.JPG                test inputs, same stems as SICE_Reshape"""


class Sice(base.RestorationBuilder):
  """SICE (Cai et al. 2018) as RestoRect uses it: train + Grad/Mix tests."""

  name = 'sice'
  TREE = _TREE
  HOMEPAGE = 'https://github.com/csjcai/SICE'
  SPLIT_RULE = ('train = every exposure in Dataset/train/<scene> with '
                'Dataset/label/<scene>; test_grad = SICE_Grad vs '
                'SICE_Reshape; test_mix = SICE_Mix vs SICE_Reshape')

  def _split_specs(self) -> dict[str, base.FolderSplit]:
    return {
        'train': base.FolderSplit('Dataset/train', 'Dataset/label',
                                  key='scene_label'),
        'test_grad': base.FolderSplit('SICE_Grad', 'SICE_Reshape'),
        'test_mix': base.FolderSplit('SICE_Mix', 'SICE_Reshape'),
    }

  def split_examples(self, root: str,
                     split: str) -> list[folders.Example]:
    self._check_split(split)
    spec = self._split_specs()[split]
    lq = folders.require_dir(root, spec.lq, _TREE)
    gt = folders.require_dir(root, spec.gt, _TREE)
    if spec.key == 'scene_label':
      return _scene_pairs(lq, gt)
    return folders.pair_folders(lq, gt, key=folders.pairing_key(spec.key))

  def _examples(self, root: str) -> dict[str, list[folders.Example]]:
    folders.check_root(root, _TREE)
    for spec in self._split_specs().values():  # Check every folder first.
      for rel in spec.folders().values():
        folders.require_dir(root, rel, _TREE)
    return {split: self.split_examples(root, split)
            for split in self._split_specs()}


def _scene_pairs(train_dir: str, label_dir: str) -> list[folders.Example]:
  scenes = folders.subfolders(train_dir)
  labels = folders.index_by_key(label_dir, folders.list_images(label_dir, 'gt'),
                             folders.stem_key)
  no_label = sorted(set(scenes) - set(labels))
  no_scene = sorted(labels[k] for k in set(labels) - set(scenes))
  if no_label or no_scene:
    raise ValueError('Unmatched SICE scenes: ' + input_pipeline.unmatched([
        (no_label, f'scene folders in {train_dir} without a label in '
                   f'{label_dir}'),
        (no_scene, f'labels in {label_dir} without a scene folder in '
                   f'{train_dir}')]) + '.')
  examples = []
  for scene in scenes:
    folder = os.path.join(train_dir, scene)
    for ex in folders.single_folder(folder, 'lq'):
      examples.append(folders.Example(f'{scene}_{ex.name}', ex.lq,
                                   os.path.join(label_dir, labels[scene])))
  return sorted(examples, key=lambda e: e.name)
