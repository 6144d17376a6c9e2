"""SID Sony ("SSID") builder: resized sRGB PNGs chosen by the Sony lists.

RestoRect trains and tests on sRGB PNGs made from the Sony RAW files and
resized (``Sony/short_resized``, ``Sony/long_resized``); the RAW → PNG step
is the authors' and is not part of the public download, so the user makes
those two folders (one PNG per ARW, same stem: ``00001_00_0.04s.ARW`` →
``00001_00_0.04s.png``). The split lists are the public
``Sony_{train,val,test}_list.txt`` beside the ``Sony/`` folder (the
reference reads them from ``dirname(dirname(dataroot_lq))``). Each list line
is ``<short path> <long path> [ISO..] [F..]``; only the two file stems are
used, looked up in the resized folders (any image extension).

Splits: ``train`` (Sony_train_list), ``validation`` (Sony_val_list),
``test`` (Sony_test_list, the reference's test config; 598 lines). Records
keep the list order; ``name`` is the short-exposure stem. Several short
exposures share one long exposure, as in the lists. The reference silently
skipped list lines whose files are missing; here a missing file, a
malformed line or a repeated short exposure is an error naming the list
file and line. RestoRect's published SID numbers are on 350 of the 598 test
pairs (248 "worst" removed, ``RestoRect/evals/removed_samples.txt``); that
subset is not shipped here.
"""

from __future__ import annotations

import os

from restorect_jax.datasets import base
from restorect_jax.datasets import folders
from restorect_jax.datasets import splits as splits_lib

_TREE = """\
SID/                           <- --manual_dir
  Sony_train_list.txt          public lists: "./Sony/short/00001_00_0.04s.ARW
  Sony_val_list.txt             ./Sony/long/00001_00_10s.ARW ISO200 F8"
  Sony_test_list.txt
  Sony/short_resized/00001_00_0.04s.png ...   sRGB PNG per short ARW (yours)
  Sony/long_resized/00001_00_10s.png ...      sRGB PNG per long ARW (yours)
  (Sony/short, Sony/long with the .ARW files may stay; they are not read)"""

_LISTS = {'train': 'Sony_train_list.txt', 'validation': 'Sony_val_list.txt',
          'test': 'Sony_test_list.txt'}
_SHORT, _LONG = 'Sony/short_resized', 'Sony/long_resized'


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


class SidSony(base.RestorationBuilder):
  """SID Sony (Chen et al. 2018), resized sRGB PNGs, RestoRect's lists."""

  name = 'sid_sony'
  TREE = _TREE
  HOMEPAGE = 'https://github.com/cchen156/Learning-to-See-in-the-Dark'
  SPLIT_RULE = ('train/validation/test = Sony_train/val/test_list.txt, list '
                'order; short stem -> Sony/short_resized, long stem -> '
                'Sony/long_resized')

  def _split_info(self, split: str) -> dict[str, str]:
    return dict(list_file=_LISTS[split],
                list_file_sha256=self._list_hashes[split])

  def _split_specs(self) -> dict[str, base.FolderSplit]:
    return {split: base.FolderSplit(_SHORT, _LONG, key='sony_list')
            for split in _LISTS}

  def split_files(self, split: str) -> tuple[str, ...]:
    return (_LISTS[split],)

  def split_examples(self, root: str,
                     split: str) -> list[folders.Example]:
    self._check_split(split)
    folders.check_root(root, _TREE)
    path = os.path.join(root, _LISTS[split])
    if not os.path.isfile(path):
      raise folders.ManualDirError(
          f'Missing split list {path}. Expected this tree:\n{_TREE}')
    short = folders.require_dir(root, _SHORT, _TREE)
    long_ = folders.require_dir(root, _LONG, _TREE)
    short_index = folders.index_by_key(
        short, folders.list_images(short, 'lq'), folders.stem_key)
    long_index = folders.index_by_key(
        long_, folders.list_images(long_, 'gt'), folders.stem_key)
    return _parse_list(path, short, short_index, long_, long_index)

  def _examples(self, root: str) -> dict[str, list[folders.Example]]:
    folders.check_root(root, _TREE)
    for split in _LISTS:  # Check every list and folder first.
      path = os.path.join(root, _LISTS[split])
      if not os.path.isfile(path):
        raise folders.ManualDirError(
            f'Missing split list {path}. Expected this tree:\n{_TREE}')
    folders.require_dir(root, _SHORT, _TREE)
    folders.require_dir(root, _LONG, _TREE)
    self._list_hashes = {
        s: splits_lib.file_sha256(os.path.join(root, f))
        for s, f in _LISTS.items()}
    return {split: self.split_examples(root, split) for split in _LISTS}


def _parse_list(path, short_dir, short_index, long_dir, long_index):
  """Examples of one Sony list file, in list order."""
  examples, missing, seen = [], [], {}
  with open(path, encoding='utf-8') as f:
    for num, line in enumerate(f, 1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) < 2:
        raise ValueError(f'{path}:{num}: expected "<short> <long> ...", got '
                         f'{line.strip()!r}.')
      s, g = _stem(parts[0]), _stem(parts[1])
      if s in seen:
        raise ValueError(f'{path}:{num}: short exposure {s} repeats line '
                         f'{seen[s]}.')
      seen[s] = num
      if s not in short_index:
        missing.append(f'line {num}: {os.path.join(short_dir, s)}.*')
      if g not in long_index:
        missing.append(f'line {num}: {os.path.join(long_dir, g)}.*')
      if s in short_index and g in long_index:
        examples.append(folders.Example(
            s, os.path.join(short_dir, short_index[s]),
            os.path.join(long_dir, long_index[g])))
  if missing:
    raise FileNotFoundError(
        f'{len(missing)} files named by {path} are missing: '
        f'{folders.name_list(missing, 20)}')
  if not examples:
    raise ValueError(f'{path} lists no pairs.')
  return examples
