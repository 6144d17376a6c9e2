"""grain input pipelines for paired (lq, gt) restoration data.

* :class:`PairedFolderSource` — random-access source over two folders of
  images matched by file name (or by the prefix before the first ``'_'``).
* :func:`train_dataset` — shard → shuffle → repeat → per-record random paired
  crop + dihedral augmentation → batch, as a ``grain.IterDataset`` whose
  iterator state can be checkpointed (``get_state``/``set_state``).
* :func:`progressive_crop` — the reference's progressive training: per step a
  random sub-batch and a smaller random crop of the training patch.
* :func:`eval_dataset` — full images, one at a time, as float32.

Conventions follow the RestoRect reference (BasicSR paired datasets, see
``spec/restorect.md`` §4): images are float32 in [0, 1], RGB, NHWC, with no
mean/std normalisation; a training sample smaller than the patch is padded on
the bottom/right with an edge-including mirror (``cv2.BORDER_REFLECT`` = numpy
``'symmetric'``) before the random crop; the 8 dihedral transforms are applied
jointly to ``lq`` and ``gt``. Everything runs in-process (no worker
processes); ``num_threads`` optionally reads records in threads.

Example::

  source = PairedFolderSource('data/train/low', 'data/train/high')
  ds = train_dataset(source, patch_size=128, batch_size=8, seed=0)
  it = iter(ds)
  batch = next(it)          # {'lq': (8, 128, 128, 3) f32, 'gt': ...}
  state = it.get_state()    # checkpoint with grain.checkpoint.CheckpointSave
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from restorect_jax import image_io

# Decoding lives in image_io (shared with the restore CLI); these names are
# kept here for existing callers.
IMAGE_EXTENSIONS = image_io.IMAGE_EXTENSIONS
read_image = image_io.read_image_uint8  # uint8 (H, W, 3), EXIF ignored.
_image_size = image_io.image_size


def _list_images(folder: str, kind: str) -> list[str]:
  if not os.path.exists(folder):
    raise FileNotFoundError(f'{kind} folder not found: {folder}')
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'{kind} path is not a folder: {folder}')
  names = image_io.list_image_names(folder)
  if not names:
    raise ValueError(
        f'{kind} folder {folder} has no image files (extensions: '
        f'{", ".join(sorted(IMAGE_EXTENSIONS))}).'
    )
  return names


def _match_key(name: str, prefix_match: bool) -> str:
  stem = os.path.splitext(name)[0]
  return stem.split('_', 1)[0] if prefix_match else stem


def _name_list(names: list[str], limit: int = 50) -> str:
  more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def _index_by_key(
    folder: str, names: list[str], prefix_match: bool
) -> dict[str, str]:
  by_key: dict[str, str] = {}
  for n in names:
    key = _match_key(n, prefix_match)
    if key in by_key:
      raise ValueError(
          f'Ambiguous pairing in {folder}: {by_key[key]} and {n} both match '
          f'key {key!r}.'
      )
    by_key[key] = n
  return by_key


# ----------------------------------------------------------------------------
# Source.
# ----------------------------------------------------------------------------


class PairedFolderSource:
  """Random-access source of (lq, gt) image pairs from two folders.

  Files are paired by name without extension (``low/1.png`` ↔ ``high/1.png``;
  ``1.jpg`` ↔ ``1.png`` also pairs), or with ``prefix_match=True`` by the part
  of the name before the first ``'_'`` (``1_low.png`` ↔ ``1_gt.png``), as the
  RestoRect evaluation script pairs files. Hidden files and files without an
  image extension are ignored. Pairs are ordered by their match key.

  Construction checks both folders exist and hold images, that every file has
  exactly one partner (the unmatched names are listed), and — with
  ``validate=True`` — reads every header to check each pair has the same
  size. Reads decode with :func:`read_image`; corrupt or truncated files and
  size mismatches raise ``ValueError`` naming the file. Nothing is skipped.

  Records are ``{'lq': uint8 (H, W, 3), 'gt': uint8 (H, W, 3), 'name': str}``
  where ``name`` is the lq file name without extension.
  """

  def __init__(
      self,
      lq_dir: str,
      gt_dir: str,
      *,
      prefix_match: bool = False,
      validate: bool = True,
  ):
    """Indexes the two folders.

    Args:
      lq_dir: folder of degraded inputs.
      gt_dir: folder of ground truths.
      prefix_match: pair by the prefix before the first ``'_'``.
      validate: read every file header now and check pair sizes.

    Raises:
      FileNotFoundError: a folder is missing.
      ValueError: an empty folder, unmatched or ambiguous names, an unreadable
        header or a size mismatch (``validate=True``).
    """
    self.lq_dir = os.fspath(lq_dir)
    self.gt_dir = os.fspath(gt_dir)
    self.prefix_match = prefix_match
    lq = _index_by_key(
        self.lq_dir, _list_images(self.lq_dir, 'lq'), prefix_match
    )
    gt = _index_by_key(
        self.gt_dir, _list_images(self.gt_dir, 'gt'), prefix_match
    )
    lq_only = sorted(lq[k] for k in lq.keys() - gt.keys())
    gt_only = sorted(gt[k] for k in gt.keys() - lq.keys())
    if lq_only or gt_only:
      parts = []
      if lq_only:
        parts.append(
            f'{len(lq_only)} lq files without gt in {self.gt_dir}: '
            + _name_list(lq_only)
        )
      if gt_only:
        parts.append(
            f'{len(gt_only)} gt files without lq in {self.lq_dir}: '
            + _name_list(gt_only)
        )
      raise ValueError('Unmatched image pairs. ' + '; '.join(parts))
    self.keys = sorted(lq)
    self.lq_paths = [os.path.join(self.lq_dir, lq[k]) for k in self.keys]
    self.gt_paths = [os.path.join(self.gt_dir, gt[k]) for k in self.keys]
    self.names = [os.path.splitext(lq[k])[0] for k in self.keys]
    if validate:
      for lq_path, gt_path in zip(self.lq_paths, self.gt_paths):
        self._check_sizes(
            lq_path, _image_size(lq_path), gt_path, _image_size(gt_path)
        )

  @staticmethod
  def _check_sizes(
      lq_path: str,
      lq_hw: Sequence[int],
      gt_path: str,
      gt_hw: Sequence[int],
  ) -> None:
    if tuple(lq_hw) != tuple(gt_hw):
      raise ValueError(
          f'Size mismatch: {lq_path} is {lq_hw[0]}x{lq_hw[1]} (HxW) but '
          f'{gt_path} is {gt_hw[0]}x{gt_hw[1]}.'
      )

  def __len__(self) -> int:
    return len(self.keys)

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f'Index {index} out of range for {len(self)} pairs.')
    lq_path, gt_path = self.lq_paths[index], self.gt_paths[index]
    lq = read_image(lq_path)
    gt = read_image(gt_path)
    self._check_sizes(lq_path, lq.shape[:2], gt_path, gt.shape[:2])
    return {'lq': lq, 'gt': gt, 'name': self.names[index]}

  def __repr__(self) -> str:
    return (
        f'PairedFolderSource(lq_dir={self.lq_dir!r}, gt_dir={self.gt_dir!r}, '
        f'prefix_match={self.prefix_match}, len={len(self)})'
    )


# ----------------------------------------------------------------------------
# Per-record transforms.
# ----------------------------------------------------------------------------


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
  """One of the 8 dihedral transforms of an (H, W, ...) image.

  ``k // 2`` counter-clockwise quarter turns (``np.rot90``), then a vertical
  flip (``np.flipud``) when ``k`` is odd: 0 identity, 1 flip, 2 rot90,
  3 rot90+flip, 4 rot180, 5 rot180+flip, 6 rot270, 7 rot270+flip (the
  reference's augmentation modes).

  Args:
    img: array with the spatial axes first.
    k: transform index in 0..7.

  Returns:
    The transformed image (contiguous copy).
  """
  k = int(k)
  if not 0 <= k < 8:
    raise ValueError(f'Dihedral index must be in 0..7, got {k}.')
  out = np.rot90(img, k // 2, axes=(0, 1))
  if k % 2:
    out = out[::-1]
  return np.ascontiguousarray(out)


def augment_dihedral(
    lq: np.ndarray, gt: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
  """Applies the same dihedral transform ``k`` (0..7) to ``lq`` and ``gt``."""
  return dihedral(lq, k), dihedral(gt, k)


def reflect_pad_to(img: np.ndarray, min_size: int) -> np.ndarray:
  """Pads bottom/right so both sides are >= ``min_size``.

  Uses numpy ``'symmetric'`` padding (edge pixel repeated, like
  ``cv2.BORDER_REFLECT``). A pad wider than the image is handled by numpy's
  repeated mirroring.

  Args:
    img: (H, W, C) image.
    min_size: minimum height and width.

  Returns:
    The padded image (the input itself when no padding is needed).
  """
  h, w = img.shape[:2]
  ph, pw = max(0, min_size - h), max(0, min_size - w)
  if not ph and not pw:
    return img
  pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
  return np.pad(img, pad, mode='symmetric')


def random_paired_crop(
    lq: np.ndarray,
    gt: np.ndarray,
    patch_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
  """Pads (if needed) and crops the same random window from ``lq`` and ``gt``.

  Args:
    lq: (H, W, C) input.
    gt: (H, W, C) target of the same height and width.
    patch_size: crop side.
    rng: generator for the window position.

  Returns:
    ``(lq_patch, gt_patch)``, each (patch_size, patch_size, C).
  """
  if lq.shape[:2] != gt.shape[:2]:
    raise ValueError(f'lq {lq.shape} and gt {gt.shape} differ in size.')
  lq = reflect_pad_to(lq, patch_size)
  gt = reflect_pad_to(gt, patch_size)
  h, w = lq.shape[:2]
  y = int(rng.integers(0, h - patch_size + 1))
  x = int(rng.integers(0, w - patch_size + 1))
  window = (slice(y, y + patch_size), slice(x, x + patch_size))
  return lq[window], gt[window]


_to_float = image_io.uint8_to_float32


class PairedCropAugment(grain.transforms.RandomMap):
  """Per-record pad + random paired crop + joint dihedral + float32 [0, 1]."""

  def __init__(self, patch_size: int, *, geometric_augs: bool = True):
    self.patch_size = patch_size
    self.geometric_augs = geometric_augs

  def random_map(
      self, element: Mapping[str, Any], rng: np.random.Generator
  ) -> dict[str, np.ndarray]:
    lq, gt = random_paired_crop(
        element['lq'], element['gt'], self.patch_size, rng
    )
    if self.geometric_augs:
      lq, gt = augment_dihedral(lq, gt, int(rng.integers(0, 8)))
    return {'lq': _to_float(lq), 'gt': _to_float(gt)}


# ----------------------------------------------------------------------------
# Datasets.
# ----------------------------------------------------------------------------


def _read_options(
    num_threads: int, prefetch_buffer_size: int
) -> grain.ReadOptions:
  return grain.ReadOptions(
      num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size
  )


def _check_shard(shard_index: int, shard_count: int) -> None:
  if shard_count < 1 or not 0 <= shard_index < shard_count:
    raise ValueError(
        f'Need 0 <= shard_index < shard_count, got {shard_index}, '
        f'{shard_count}.'
    )


def train_dataset(
    source: Any,
    *,
    patch_size: int,
    batch_size: int,
    seed: int,
    num_epochs: int | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    geometric_augs: bool = True,
    num_threads: int = 0,
    prefetch_buffer_size: int = 16,
) -> grain.IterDataset:
  """Training batches of random paired patches.

  Pipeline: ``MapDataset.source(source)[shard_index::shard_count]`` →
  ``shuffle`` (reshuffled every epoch) → ``repeat(num_epochs)`` →
  :class:`PairedCropAugment` (seeded per record from ``seed`` and the global
  record index, so every epoch gets new crops) → ``batch(drop_remainder=True)``
  → ``to_iter_dataset``. The stream is a pure function of the source, the
  arguments and ``seed``; the iterator's ``get_state()``/``set_state()``
  resume it exactly (use ``grain.checkpoint.CheckpointSave/Restore`` with
  Orbax).

  Args:
    source: random-access source of ``{'lq', 'gt', ...}`` uint8 records, e.g.
      :class:`PairedFolderSource`.
    patch_size: training crop side P.
    batch_size: per-process batch size B.
    seed: pipeline seed (>= 0).
    num_epochs: passes over the shard; None repeats forever.
    shard_index: this process's shard (e.g. ``jax.process_index()``).
    shard_count: number of shards (e.g. ``jax.process_count()``).
    geometric_augs: apply a random joint dihedral transform.
    num_threads: record-reading threads; 0 reads in the calling thread.
    prefetch_buffer_size: records buffered ahead when ``num_threads > 0``.

  Returns:
    A ``grain.IterDataset`` of ``{'lq': (B, P, P, 3) float32, 'gt': (B, P, P,
    3) float32}`` with values in [0, 1].
  """
  if patch_size < 1 or batch_size < 1:
    raise ValueError(
        f'patch_size and batch_size must be >= 1, got {patch_size}, '
        f'{batch_size}.'
    )
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}.')
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f'num_epochs must be None or >= 1, got {num_epochs}.')
  _check_shard(shard_index, shard_count)
  shuffle_seed, map_seed = (
      int(s) for s in np.random.SeedSequence(seed).generate_state(2)
  )
  ds = grain.MapDataset.source(source)
  ds = ds[shard_index::shard_count]
  if len(ds) == 0:
    raise ValueError(
        f'Shard {shard_index}/{shard_count} of {source!r} has no records.'
    )
  if num_epochs is not None and len(ds) * num_epochs < batch_size:
    raise ValueError(
        f'{len(ds)} records x {num_epochs} epochs is less than one batch of '
        f'{batch_size} (drop_remainder=True).'
    )
  ds = ds.shuffle(seed=shuffle_seed).repeat(num_epochs)
  ds = ds.random_map(
      PairedCropAugment(patch_size, geometric_augs=geometric_augs),
      seed=map_seed,
  )
  ds = ds.batch(batch_size, drop_remainder=True)
  return ds.to_iter_dataset(_read_options(num_threads, prefetch_buffer_size))


def _eval_record(
    record: Mapping[str, Any], batch_axis: bool = True
) -> dict[str, Any]:
  lq, gt = _to_float(record['lq']), _to_float(record['gt'])
  if batch_axis:
    lq, gt = lq[None], gt[None]
  return {'lq': lq, 'gt': gt, 'name': str(record['name'])}


def eval_dataset(
    source: Any,
    *,
    shard_index: int = 0,
    shard_count: int = 1,
    batch_axis: bool = True,
    num_threads: int = 0,
    prefetch_buffer_size: int = 4,
) -> grain.IterDataset:
  """Full-size evaluation images, one per element, in source order.

  No padding or resizing: the model pads to a multiple of 8 itself. The
  returned dataset can be iterated any number of times.

  Args:
    source: random-access source of ``{'lq', 'gt', 'name'}`` records.
    shard_index: this process's shard.
    shard_count: number of shards (records ``shard_index::shard_count``).
    batch_axis: give images a leading batch axis of 1; False yields
      (H, W, 3) arrays.
    num_threads: record-reading threads; 0 reads in the calling thread.
    prefetch_buffer_size: records buffered ahead when ``num_threads > 0``.

  Returns:
    A ``grain.IterDataset`` of ``{'lq': (1, H, W, 3) float32, 'gt': (1, H,
    W, 3) float32, 'name': str}`` (no leading 1 when ``batch_axis=False``);
    H and W vary per image.
  """
  _check_shard(shard_index, shard_count)
  ds = grain.MapDataset.source(source)[shard_index::shard_count]
  ds = ds.map(functools.partial(_eval_record, batch_axis=batch_axis))
  return ds.to_iter_dataset(_read_options(num_threads, prefetch_buffer_size))


# ----------------------------------------------------------------------------
# Progressive training (reference train_pipeline: mini_batch_sizes/gt_sizes).
# ----------------------------------------------------------------------------


def stage_for_step(step: int, stage_steps: Sequence[int]) -> int:
  """Progressive-training stage of a step.

  ``stage_steps`` are the stage lengths (the reference's ``iters``, e.g.
  ``[92000, 80000, 38000, 33000, 33000, 24000]``). ``step`` is 0-based (the
  train state's step before the update; the reference's 1-based
  ``current_iter`` is ``step + 1``): stage ``i`` covers
  ``sum(stage_steps[:i]) <= step < sum(stage_steps[:i + 1])``. Steps past the
  end stay in the last stage, as in the reference.

  Args:
    step: 0-based training step.
    stage_steps: positive length of each stage.

  Returns:
    The stage index in ``0..len(stage_steps) - 1``.
  """
  if not stage_steps:
    raise ValueError('stage_steps is empty.')
  if any(s < 1 for s in stage_steps):
    raise ValueError(f'stage_steps must be positive, got {stage_steps}.')
  if step < 0:
    raise ValueError(f'step must be >= 0, got {step}.')
  ends = np.cumsum(stage_steps)
  stage = int(np.searchsorted(ends, step, side='right'))
  return min(stage, len(stage_steps) - 1)


def progressive_crop(
    batch: Mapping[str, Any],
    *,
    step: int,
    seed: int,
    mini_batch_sizes: Sequence[int],
    gt_sizes: Sequence[int],
    stage_steps: Sequence[int],
) -> dict[str, np.ndarray]:
  """The reference's progressive patch/batch schedule for one step.

  Picks the stage with :func:`stage_for_step`; if the batch is larger than
  ``mini_batch_sizes[stage]`` takes a random subset of that many samples
  (without replacement, random order), and if the patch is larger than
  ``gt_sizes[stage]`` crops one random window of that size, the same window
  for every sample and for ``lq`` and ``gt``. Randomness comes from
  ``np.random.default_rng((seed, step))`` only, so a resumed run repeats it.

  Args:
    batch: ``{'lq': (B, P, P, C), 'gt': (B, P, P, C), ...}``; other keys with
      a leading batch axis are subset too, scalars are passed through.
    step: 0-based training step (see :func:`stage_for_step`).
    seed: non-negative seed.
    mini_batch_sizes: batch size per stage.
    gt_sizes: crop side per stage (each must be <= P).
    stage_steps: length of each stage in steps.

  Returns:
    A dict of numpy arrays ``{'lq': (b, g, g, C), 'gt': (b, g, g, C), ...}``
    with ``b = min(B, mini_batch_sizes[stage])``, ``g = gt_sizes[stage]``.
  """
  if not len(mini_batch_sizes) == len(gt_sizes) == len(stage_steps):
    raise ValueError(
        'mini_batch_sizes, gt_sizes and stage_steps need one entry per '
        f'stage; got {len(mini_batch_sizes)}, {len(gt_sizes)}, '
        f'{len(stage_steps)}.'
    )
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}.')
  stage = stage_for_step(step, stage_steps)
  mini_batch, gt_size = int(mini_batch_sizes[stage]), int(gt_sizes[stage])
  lq, gt = np.asarray(batch['lq']), np.asarray(batch['gt'])
  if lq.shape[:3] != gt.shape[:3]:
    raise ValueError(f'lq {lq.shape} and gt {gt.shape} differ.')
  b, h, w = lq.shape[:3]
  if mini_batch < 1 or gt_size < 1:
    raise ValueError(f'Stage {stage}: bad sizes {mini_batch}, {gt_size}.')
  if gt_size > min(h, w):
    raise ValueError(
        f'Stage {stage}: gt_size {gt_size} is larger than the {h}x{w} patch.'
    )
  rng = np.random.default_rng((seed, step))
  idx = None
  if b > mini_batch:
    idx = rng.choice(b, size=mini_batch, replace=False)
  y = int(rng.integers(0, h - gt_size + 1))
  x = int(rng.integers(0, w - gt_size + 1))
  out = {}
  for key, value in batch.items():
    arr = np.asarray(value)
    if arr.ndim >= 1 and arr.shape[0] == b and idx is not None:
      arr = arr[idx]
    if key in ('lq', 'gt'):
      arr = arr[:, y : y + gt_size, x : x + gt_size]
    out[key] = arr
  return out
