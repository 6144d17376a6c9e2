"""Folder checks and file pairing shared by the builders and the registry.

Files pair by a key computed from the file name (the stem, the part before
the first ``_``, the stem without a role prefix such as ``low`` /
``normal``, or without a suffix such as DIV2K's ``x4``). The keys have names
(:data:`KEYS`, used by ``base.FolderSplit.key`` and
:mod:`restorect_jax.datasets.registry`), so one implementation serves both
``prepare`` and reading the folders directly. Listing, the two basic keys
and the error name lists reuse ``input_pipeline``'s helpers, so builders and
``input_pipeline.PairedFolderSource`` see the same files. Every problem is an
error naming the files: a missing folder (:class:`ManualDirError`, with the
expected tree), files without a partner, two files with one key, or a folder
that differs from a shipped split list (:class:`SplitMismatchError`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence

from restorect_jax.data import input_pipeline

# input_pipeline's helpers, reused so both read folders alike.
list_images = input_pipeline.list_images
index_by_key = input_pipeline.index_by_key
name_list = input_pipeline.name_list


class ManualDirError(FileNotFoundError):
  """The manual folder, or a sub-folder the builder needs, is missing."""


class SplitMismatchError(ValueError):
  """A folder's record names differ from the shipped split list."""


def hint(root: str, rel: str) -> str:
  """Suggests the folder that holds ``rel``: a child or the parent of root.

  A child: the zip's top folder was not passed (``LOL-v2/`` holds
  ``Real_captured/...``). The parent: a folder inside the tree was passed
  (``rel`` = ``Real_captured/Train/Low`` but ``root`` is ``Real_captured``).
  """
  if not os.path.isdir(root):
    return ''
  for child in sorted(os.listdir(root)):
    if os.path.isdir(os.path.join(root, child, rel)):
      return (f' Found it under {os.path.join(root, child)}: pass that '
              'folder instead.')
  root = os.path.abspath(root)
  parts = rel.split('/')
  top = root
  for depth in range(1, len(parts)):
    top = os.path.dirname(top)
    inner = os.path.relpath(root, top).replace(os.sep, '/')
    if (inner == '/'.join(parts[:depth]) and
        os.path.isdir(os.path.join(top, rel))):
      return (f' {root} is the {inner!r} folder inside the tree: pass '
              f'{top} instead.')
  return ''


def check_root(root: str, tree: str) -> str:
  """Returns ``root`` if it is an existing folder, else raises."""
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise ManualDirError(
        f'Manual folder not found: {root}. Expected this tree:\n{tree}')
  return root


def require_dir(root: str, rel: str | Sequence[str], tree: str) -> str:
  """``root/rel`` as a path, or :class:`ManualDirError` with the tree.

  Args:
    root: the manual folder.
    rel: relative folder, or alternatives tried in order (first existing
      wins).
    tree: the expected tree, shown in the error.

  Returns:
    The existing folder's path.
  """
  alternatives = (rel,) if isinstance(rel, str) else tuple(rel)
  for candidate in alternatives:
    path = os.path.join(root, candidate)
    if os.path.isdir(path):
      return path
  what = ' or '.join(repr(a) for a in alternatives)
  raise ManualDirError(
      f'Missing sub-folder {what} in manual folder {root}.'
      f'{hint(root, alternatives[0])} Expected this tree:\n{tree}')


def subfolders(folder: str) -> list[str]:
  """Sorted names of the non-hidden sub-folders of ``folder``."""
  return sorted(n for n in os.listdir(folder)
                if not n.startswith('.') and
                os.path.isdir(os.path.join(folder, n)))


def stem_key(name: str) -> str:
  """Pairing key: the file name without extension (``1.png`` ↔ ``1.jpg``)."""
  return input_pipeline.match_key(name, False)


def underscore_prefix_key(name: str) -> str:
  """Pairing key: the part before the first ``_`` (``0_rain``, ``0_clean``)."""
  return input_pipeline.match_key(name, True)


def _strip_role(words: tuple[str, ...], at_start: bool
                ) -> Callable[[str], str]:
  """A key that strips one of ``words`` (longest first) from the stem."""
  alt = '|'.join(re.escape(w) for w in sorted(words, key=len, reverse=True))
  pattern = re.compile(f'^(?:{alt})' if at_start else f'(?:{alt})$')

  def key(name: str) -> str:
    return pattern.sub('', stem_key(name), count=1)

  return key


def role_prefix_key(*prefixes: str) -> Callable[[str], str]:
  """Pairing key that strips a leading role word from the stem.

  E.g. ``role_prefix_key('low', 'normal')`` pairs ``low00690.png`` with
  ``normal00690.png`` (LOL-v2-Real). Longer prefixes are tried first;
  a stem without any prefix is its own key (case-sensitive).
  """
  return _strip_role(prefixes, at_start=True)


def role_suffix_key(*suffixes: str) -> Callable[[str], str]:
  """Pairing key that strips a trailing role word from the stem.

  E.g. ``role_suffix_key('x4')`` pairs DIV2K's ``0001x4.png`` (LR) with
  ``0001.png`` (HR). Longer suffixes are tried first; a stem without any
  suffix is its own key (case-sensitive).
  """
  return _strip_role(suffixes, at_start=False)


# Pairing rules by name (``base.FolderSplit.key``, ``registry.Layout``).
# File-name keys pair the files of two folders:
KEYS: dict[str, Callable[[str], str]] = {
    # 1.png <-> 1.png (or 1.jpg): LOL-v1, LOL-v2-Synthetic, most sets.
    'stem': stem_key,
    # 0_rain.png <-> 0_clean.png: RainDrop; evaluate --prefix_match.
    'underscore_prefix': underscore_prefix_key,
    # low00001.png <-> normal00001.png: LOL-v2 Real_captured.
    'low_normal_prefix': role_prefix_key('low', 'normal'),
    # rain-001.png <-> norain-001.png: Rain100L (JORDER names).
    'rain_prefix': role_prefix_key('norain-', 'rain-', 'norain', 'rain'),
    # 0001x4.png <-> 0001.png: DIV2K LR / HR.
    'x4_suffix': role_suffix_key('x4'),
}
# Rules that are not a key of one file name (a builder implements them):
RULES = {
    'same_file': 'clean images only: lq is the gt file, noise is added later',
    'lq_only': 'inputs only, no ground truth',
    'video_frame': '<video>/<frame> in both folders, record <video>_<frame>',
    'scene_label': 'every exposure in <scene>/ with the label <scene>.*',
    'sony_list': 'the Sony list file names the short and long exposure',
}


def pairing_key(rule: str) -> Callable[[str], str]:
  """The key function of a named file-name rule (:data:`KEYS`)."""
  if rule not in KEYS:
    raise ValueError(f'Unknown pairing rule {rule!r}; file-name rules: '
                     f'{", ".join(sorted(KEYS))}.')
  return KEYS[rule]


@dataclasses.dataclass(frozen=True)
class Example:
  """One record to write: its name and the source file of each role."""

  name: str
  lq: str | None = None
  gt: str | None = None


def pair_folders(
    lq_dir: str,
    gt_dir: str,
    *,
    key: Callable[[str], str] = stem_key,
) -> list[Example]:
  """Pairs two folders by key; every file must have exactly one partner.

  Args:
    lq_dir: folder of degraded inputs.
    gt_dir: folder of ground truths.
    key: pairing key of a file name.

  Returns:
    Examples sorted by record name (the lq file name without extension).

  Raises:
    ValueError: an empty folder, an ambiguous key, or unmatched files (all
      are listed).
  """
  examples = [
      Example(stem_key(lq), os.path.join(lq_dir, lq),
              os.path.join(gt_dir, gt))
      for lq, gt in input_pipeline.pair_by_key(lq_dir, gt_dir, key)
  ]
  return sorted(examples, key=lambda e: e.name)


def single_folder(folder: str, role: str) -> list[Example]:
  """One example per image of ``folder`` (role ``'lq'`` or ``'gt'``)."""
  names = list_images(folder, role)
  index_by_key(folder, names, stem_key)  # 'a.png' + 'a.jpg' is an error.
  return [Example(stem_key(n), **{role: os.path.join(folder, n)})
          for n in names]


def order_by_list(
    examples: Sequence[Example], names: Sequence[str], where: str,
    list_name: str,
) -> list[Example]:
  """Reorders examples to ``names``; the two name sets must be equal.

  Raises:
    SplitMismatchError: names missing from the folder or not in the list.
  """
  by_name = {e.name: e for e in examples}
  missing = [n for n in names if n not in by_name]
  extra = sorted(set(by_name) - set(names))
  if missing or extra:
    raise SplitMismatchError(
        f'{where} does not match the split list {list_name}: '
        + input_pipeline.unmatched([
            (missing, 'listed names are missing'),
            (extra, 'names are not in the list')])
        + '. The shipped lists are fixed; the folder is not the public '
        'download.')
  return [by_name[n] for n in names]
