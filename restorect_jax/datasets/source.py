"""Random-access record sources over prepared builders, and overlap checks.

:class:`RecordSource` wraps a builder's ``array_record`` data source (read
with ``builder.as_data_source``, no TensorFlow) and yields the records
``input_pipeline`` expects:

* paired sets: ``{'lq': uint8 (H, W, 3), 'gt': uint8 (H, W, 3), 'name': str}``
  — the same as ``input_pipeline.PairedFolderSource``;
* unpaired sets (DICM, LIME, MEF, NPE, VV, fundus): ``{'lq', 'name'}``, no
  ``'gt'`` (``has_gt`` is False) unless ``gt_from_lq=True``;
* clean sets (denoising): ``{'lq', 'gt', 'name'}`` with ``lq`` the same array
  as ``gt``; the noise is added later.

Overlaps: every prepared split records the SHA-256 of each decoded image, so
:func:`find_overlaps` compares two splits without decoding anything, by
content rather than by file name. :func:`check_overlap` warns
(:class:`DatasetOverlapWarning` + absl log) naming the shared images;
:func:`check_known_overlaps` runs it for the known contaminated pairs
(``KNOWN_OVERLAPS``: LOL-v1 train vs LOL-v2-Real test) when both are
prepared.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from absl import logging

from restorect_jax.data import input_pipeline
from restorect_jax.datasets import folders
from restorect_jax.datasets import splits as splits_lib

# (train dataset, split), (eval dataset, split) pairs known to share images.
KNOWN_OVERLAPS = ((('lol_v1', 'train'), ('lol_v2_real', 'test')),)


class DatasetOverlapWarning(UserWarning):
  """A training split shares images (same pixels) with an evaluation split."""


class RecordSource:
  """Random-access source of one split of a prepared builder.

  Attributes:
    dataset: builder name with config (``'uieb/t90'``).
    split: split name.
    kind: ``'paired'``, ``'unpaired'`` or ``'clean'``.
    has_gt: whether records carry ``'gt'``.
    names: record names in record order (from the metadata).
    names_sha256: SHA-256 of ``names`` (:func:`splits.names_sha256`).
    sizes: ``{name: [H, W]}``.
    pixel_sha256: ``{name: {role: sha256 of the decoded image}}``.
    metadata: the builder's whole metadata dict.
  """

  def __init__(self, builder: Any, split: str, *, gt_from_lq: bool = False):
    md = dict(builder.info.metadata or {})
    if 'splits' not in md:
      raise ValueError(f'{builder.data_dir} has no restorect_jax metadata; '
                       'prepare it with restorect_jax.datasets.prepare.')
    if split not in md['splits']:
      raise ValueError(f'{builder.name} has no split {split!r}; splits: '
                       f'{sorted(md["splits"])}.')
    info = md['splits'][split]
    config = md.get('config')
    self.dataset = f'{builder.name}/{config}' if config else builder.name
    self.split = split
    self.kind = md['kind']
    self.gt_from_lq = bool(gt_from_lq) and self.kind == 'unpaired'
    self.has_gt = self.kind != 'unpaired' or self.gt_from_lq
    self.names = list(info['names'])
    self.names_sha256 = info['names_sha256']
    self.sizes = info.get('sizes', {})
    self.pixel_sha256 = info.get('pixel_sha256', {})
    self.metadata = md
    self._source = builder.as_data_source(split=split)
    if len(self._source) != info['count'] or len(self.names) != info['count']:
      raise ValueError(
          f'{self.dataset}/{split}: {len(self._source)} records on disk but '
          f'the metadata lists {info["count"]}; prepare it again.')
    if splits_lib.names_sha256(self.names) != self.names_sha256:
      raise ValueError(f'{self.dataset}/{split}: metadata names do not match '
                       'their recorded SHA-256; prepare it again.')

  @property
  def label(self) -> str:
    return f'{self.dataset}:{self.split}'

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = input_pipeline.check_index(index, len(self), 'records')
    rec = self._source[index % len(self)]
    name = rec['name']
    out = {'name': name.decode('utf-8') if isinstance(name, bytes) else name}
    if self.kind == 'clean':
      out['gt'] = out['lq'] = rec['gt']
    else:
      out['lq'] = rec['lq']
      if self.kind == 'paired':
        out['gt'] = rec['gt']
      elif self.gt_from_lq:
        out['gt'] = rec['lq']
    return out

  def check_min_size(self, min_size: int) -> None:
    """Raises ``ValueError`` naming every image smaller than ``min_size``."""
    small = [f'{n} ({h}x{w})' for n, (h, w) in self.sizes.items()
             if h < min_size or w < min_size]
    if small:
      raise ValueError(
          f'{self.label}: {len(small)} images are smaller than {min_size} '
          f'px on a side: {folders.name_list(small)}. The training '
          'pipeline would mirror-pad them (input_pipeline.reflect_pad_to); '
          'use a smaller patch or drop min_size to accept that.')

  def __repr__(self) -> str:
    return (f'RecordSource({self.label}, kind={self.kind}, '
            f'len={len(self)})')


def find_overlaps(a: RecordSource, b: RecordSource
                  ) -> list[tuple[str, str]]:
  """``(name in a, name in b)`` pairs whose decoded images are identical.

  Any role matches any role (an lq of ``a`` equal to a gt of ``b`` counts).
  """
  index: dict[str, set[str]] = {}
  for name, roles in a.pixel_sha256.items():
    for digest in roles.values():
      index.setdefault(digest, set()).add(name)
  pairs = set()
  for name, roles in b.pixel_sha256.items():
    for digest in roles.values():
      for other in index.get(digest, ()):
        pairs.add((other, name))
  return sorted(pairs)


def check_overlap(train: RecordSource, evaluation: RecordSource
                  ) -> list[tuple[str, str]]:
  """Warns if ``train`` and ``evaluation`` share images; returns the pairs."""
  pairs = find_overlaps(train, evaluation)
  if pairs:
    shown = folders.name_list([f'{a}={b}' for a, b in pairs], 20)
    msg = (f'{len(pairs)} images of {train.label} are also in '
           f'{evaluation.label} (identical pixels; train=eval names): '
           f'{shown}. A model trained on {train.label} is not evaluated '
           f'fairly on {evaluation.label}.')
    logging.warning(msg)
    warnings.warn(msg, DatasetOverlapWarning, stacklevel=2)
  return pairs


def check_known_overlaps(
    dataset: str,
    data_dir: str | os.PathLike[str] | None,
    load: Any,
) -> list[tuple[str, str, list[tuple[str, str]]]]:
  """Runs :func:`check_overlap` for known pairs involving ``dataset``.

  Only pairs whose two datasets are both prepared in ``data_dir`` are
  checked.

  Args:
    dataset: builder name (a config suffix is ignored).
    data_dir: the TFDS data dir.
    load: ``load(name, split, data_dir) -> RecordSource or None`` (None when
      not prepared).

  Returns:
    ``(train label, eval label, pairs)`` for each checked known pair.
  """
  base_name = dataset.split('/')[0]
  results = []
  for (tn, ts), (en, es) in KNOWN_OVERLAPS:
    if base_name not in (tn, en):
      continue
    train, evaluation = load(tn, ts, data_dir), load(en, es, data_dir)
    if train is None or evaluation is None:
      continue
    results.append((train.label, evaluation.label,
                    check_overlap(train, evaluation)))
  return results


def overlap_pairs_table(results: Sequence[tuple[str, str, list]]) -> str:
  """One line per checked pair, for CLI output."""
  return '\n'.join(f'{t} vs {e}: {len(p)} shared images'
                   for t, e, p in results)
