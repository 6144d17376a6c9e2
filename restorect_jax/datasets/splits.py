"""Split rules, the shipped split lists and their SHA-256 sums.

* Shipped lists (``splits/*.txt``, one record name per line, ``\\n`` line
  ends): only lists that are fixed and publicly known —
  ``lol_v1_eval15.txt`` (the 15 LOL-v1 ``eval15`` images) and
  ``lol_v2_real_test.txt`` (LOL-v2-Real ``Test``: ``low00690`` …
  ``low00789``). ``splits/SHA256SUMS`` (``sha256sum`` format) covers every
  list; :func:`verify_split_files` checks it and :func:`read_split_file`
  refuses a list whose hash does not match.
* Name-list hashes: :func:`names_sha256` is the SHA-256 of the names joined
  by ``\\n`` with a final ``\\n`` (the bytes of a split file), so a prepared
  split whose names equal a shipped list records that list's hash.
* Random rules for sets without an official split (UIEB, LSUI):
  :func:`reference_split` reproduces RestoRect's script (``random.seed(42)``,
  ``random.shuffle`` of the name-sorted file list, first ``int(0.8 * n)``
  train, the rest test); :func:`uieb_t90_split` is the common UIEB 800/90
  split as defined here (the same shuffle, the last 90 test), so its test
  set is a subset of the 80/20 test set.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence

from restorect_jax.core import hashing

SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'splits')
SUMS_FILE = 'SHA256SUMS'


class SplitHashError(ValueError):
  """A split file's SHA-256 differs from SHA256SUMS (or is not listed)."""


# Hex SHA-256 of a file's bytes (one implementation for the project).
file_sha256 = hashing.file_sha256


def names_sha256(names: Sequence[str]) -> str:
  """SHA-256 of ``'\\n'.join(names) + '\\n'`` (the bytes of a split file)."""
  return hashlib.sha256(
      ''.join(f'{n}\n' for n in names).encode('utf-8')).hexdigest()


def read_sums(splits_dir: str = SPLITS_DIR) -> dict[str, str]:
  """``{file name: hex sha256}`` from ``SHA256SUMS`` (sha256sum format)."""
  path = os.path.join(splits_dir, SUMS_FILE)
  if not os.path.isfile(path):
    raise SplitHashError(f'Missing checksum file {path}.')
  sums = {}
  with open(path, encoding='utf-8') as f:
    for num, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      parts = line.split()
      if len(parts) != 2 or len(parts[0]) != 64:
        raise SplitHashError(f'{path}:{num}: expected "<sha256>  <file>", '
                             f'got {line!r}.')
      sums[parts[1].lstrip('*')] = parts[0].lower()
  return sums


def verify_split_files(splits_dir: str = SPLITS_DIR) -> dict[str, str]:
  """Checks every ``*.txt`` in ``splits_dir`` against ``SHA256SUMS``.

  Args:
    splits_dir: folder with the split lists and ``SHA256SUMS``.

  Returns:
    ``{file name: sha256}`` of the verified files.

  Raises:
    SplitHashError: a hash differs, a list is not in ``SHA256SUMS``, or
      ``SHA256SUMS`` names a file that is missing (all are named).
  """
  sums = read_sums(splits_dir)
  files = sorted(n for n in os.listdir(splits_dir) if n.endswith('.txt'))
  problems = []
  for name in sorted(set(sums) - set(files)):
    problems.append(f'{name} is listed in {SUMS_FILE} but missing')
  for name in files:
    if name not in sums:
      problems.append(f'{name} is not listed in {SUMS_FILE}')
      continue
    actual = file_sha256(os.path.join(splits_dir, name))
    if actual != sums[name]:
      problems.append(f'{name} has sha256 {actual}, {SUMS_FILE} says '
                      f'{sums[name]}')
  if problems:
    raise SplitHashError(f'Split files in {splits_dir} do not verify: '
                         + '; '.join(problems) + '.')
  return {name: sums[name] for name in files}


def read_split_file(name: str, splits_dir: str = SPLITS_DIR) -> list[str]:
  """The record names of a shipped split list, after checking its hash.

  Args:
    name: file name in ``splits_dir``, e.g. ``'lol_v1_eval15.txt'``.
    splits_dir: folder with the lists and ``SHA256SUMS``.

  Returns:
    The names, in file order.

  Raises:
    SplitHashError: the file's hash differs from ``SHA256SUMS``.
    ValueError: a blank line or a repeated name.
  """
  path = os.path.join(splits_dir, name)
  expected = read_sums(splits_dir).get(name)
  if expected is None:
    raise SplitHashError(f'{name} is not listed in '
                         f'{os.path.join(splits_dir, SUMS_FILE)}.')
  actual = file_sha256(path)
  if actual != expected:
    raise SplitHashError(f'{path} has sha256 {actual}, {SUMS_FILE} says '
                         f'{expected}.')
  with open(path, encoding='utf-8') as f:
    names = f.read().split('\n')
  if names and names[-1] == '':
    names.pop()
  if any(not n.strip() or n != n.strip() for n in names):
    raise ValueError(f'{path}: blank line or surrounding spaces.')
  if len(set(names)) != len(names):
    raise ValueError(f'{path}: repeated names.')
  return names


def reference_split(
    names: Sequence[str], *, seed: int = 42, train_fraction: float = 0.8
) -> tuple[list[str], list[str]]:
  """RestoRect's random 80/20 split (``RestoRect/diff.py``, LSUI).

  The reference sorts the file names, zips input and GT lists, calls
  ``random.seed(42)`` and ``random.shuffle`` on the pairs and cuts at
  ``int(0.8 * n)``. ``random.shuffle`` draws the same permutation for any
  list of the same length, so shuffling the sorted names here gives the same
  membership. Within each part the names are returned sorted.

  Args:
    names: the file names the split is drawn from (sorted here).
    seed: ``random.seed`` value.
    train_fraction: fraction of the shuffled list that is train.

  Returns:
    ``(train, test)`` name lists.
  """
  order = sorted(names)
  if len(set(order)) != len(order):
    raise ValueError('reference_split: repeated names.')
  random.Random(seed).shuffle(order)
  cut = int(train_fraction * len(order))
  return sorted(order[:cut]), sorted(order[cut:])


def uieb_t90_split(
    names: Sequence[str], *, seed: int = 42, num_test: int = 90
) -> tuple[list[str], list[str]]:
  """The common UIEB 800/90 split, as defined by this package.

  UIEB has no official split file; papers use 800 train / 90 test pairs
  ("T90") with unpublished lists. Here: the :func:`reference_split`
  permutation (seed 42 over the sorted names), the last ``num_test`` names
  test and the rest train, so T90 ⊂ the RestoRect 80/20 test set.

  Args:
    names: file names (890 for the full UIEB).
    seed: ``random.seed`` value.
    num_test: test-set size.

  Returns:
    ``(train, test)`` name lists, each sorted.

  Raises:
    ValueError: fewer than ``num_test + 1`` names.
  """
  order = sorted(names)
  if len(order) <= num_test:
    raise ValueError(f'The UIEB 800/90 split needs more than {num_test} '
                     f'images, got {len(order)}.')
  if len(set(order)) != len(order):
    raise ValueError('uieb_t90_split: repeated names.')
  random.Random(seed).shuffle(order)
  cut = len(order) - num_test
  return sorted(order[:cut]), sorted(order[cut:])
