"""grain input pipelines for paired (lq, gt) restoration data.

* :class:`PairedFolderSource` — random-access source over two folders of
  images matched by file name (or by the prefix before the first ``'_'``).
  Any other random-access source of ``{'lq', 'gt', 'name'}`` uint8 records
  (e.g. a TFDS ``data_source``) works with the functions below.
* :func:`train_dataset` — shard → shuffle → repeat → optional joint
  bicubic resize → per-record random paired crop + dihedral augmentation →
  batch → optional multiprocess prefetch, as a ``grain.IterDataset`` whose
  iterator state can be checkpointed (``get_state``/``set_state``).
* :func:`progressive_crop` — the reference's progressive training: per step a
  random sub-batch and a smaller random crop of the training patch.
* :func:`eval_dataset` — full images, one at a time, as float32; optional
  joint resize, reflect padding to a multiple (e.g. 8) or to shape buckets.
* :func:`resize_bicubic` / :func:`resized_shape` — the reference's resize
  modes (``'square'``: UIEB/LSUI ``chaos``; ``'multiple_of_32'``:
  SICE/SID/BAID/FiveK).

Conventions follow the RestoRect reference (BasicSR paired datasets, see
``spec/restorect.md`` §4): images are float32 in [0, 1], RGB, NHWC, with no
mean/std normalisation; a training sample smaller than the patch is padded on
the bottom/right with an edge-including mirror (``cv2.BORDER_REFLECT`` = numpy
``'symmetric'``) before the random crop; the 8 dihedral transforms are applied
jointly to ``lq`` and ``gt``. ``num_threads`` reads records in threads;
``num_workers`` runs the whole per-record pipeline in worker processes
(grain ``mp_prefetch``) and yields the same stream as ``num_workers=0``.

Resizing (``resize=``), as the reference's dataset classes do it
(``cv2.resize(..., INTER_CUBIC)`` on the float32 [0, 1] images, lq and gt
alike, before any crop):

* ``'none'`` — native size (LOL and most sets).
* ``'square'`` — the whole image to ``resize_size`` × ``resize_size``
  (reference ``dataset_type: chaos``: 512 for UIEB/LSUI training, 256 at
  test), no aspect preservation.
* ``'multiple_of_32'`` — reference ``SICE``/``SSID``/``BAID`` types: if a side
  exceeds 2048 the long side becomes 2048 and the short side
  ``floor(short * 2048 / long)``; then each side is rounded *up* to the next
  multiple of 32 (so the long side stays <= 2048), and the image is resized
  to that shape (an image already of that shape is returned unchanged).

:func:`resize_bicubic` is :func:`restorect_jax.ops.resample.resize_bicubic`,
a numpy port of OpenCV's ``INTER_CUBIC`` (Keys kernel with a = -0.75,
half-pixel centres, edge pixels replicated, no anti-aliasing when shrinking,
float32 arithmetic, width pass then height pass; within 2 ulp of OpenCV
without IPP, see its docstring), also checked against PyTorch's
``interpolate(mode='bicubic', align_corners=False)`` to 2e-5. Bicubic
overshoot is not clipped (the reference does not clip either), so resized
values can leave [0, 1], by up to about 0.2 at hard edges. Pillow's BICUBIC
is a different filter (a = -0.5, anti-aliased) and is not used.

Example::

  source = PairedFolderSource('data/train/low', 'data/train/high')
  ds = train_dataset(source, patch_size=128, batch_size=8, seed=0)
  it = iter(ds)
  batch = next(it)          # {'lq': (8, 128, 128, 3) f32, 'gt': ...}
  state = it.get_state()    # checkpoint with grain.checkpoint.CheckpointSave
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import grain
import numpy as np
from absl import flags

from restorect_jax.data import image_io
from restorect_jax.inference import tiling
from restorect_jax.ops import dihedral as dihedral_lib
from restorect_jax.ops import padding, quantize, resample

ResizeMode = Literal['none', 'square', 'multiple_of_32']
RESIZE_MODES = ('none', 'square', 'multiple_of_32')
# The reference's SICE/SSID/BAID resize: sides to multiples of 32, long side
# capped at 2048 (``paired_scale_BAID``).
RESIZE_MULTIPLE = 32
RESIZE_MAX_SIDE = 2048

# Decoding lives in image_io (shared with the restore CLI); these names are
# kept here for existing callers.
IMAGE_EXTENSIONS = image_io.IMAGE_EXTENSIONS
read_image = image_io.read_image_uint8  # uint8 (H, W, 3), EXIF ignored.
_image_size = image_io.image_size


def list_images(folder: str, kind: str) -> list[str]:
  """Sorted image file names in ``folder``; raises if missing or empty.

  Args:
    folder: the folder to list.
    kind: what the folder holds (``'lq'``, ``'gt'``, ...), for messages.
  """
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


def match_key(name: str, prefix_match: bool = False) -> str:
  """Pairing key: the stem, or with ``prefix_match`` the part before ``_``."""
  stem = os.path.splitext(name)[0]
  return stem.split('_', 1)[0] if prefix_match else stem


def name_list(names: Sequence[str], limit: int = 50) -> str:
  """``names`` joined for an error message, at most ``limit`` of them."""
  more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def unmatched(groups: Sequence[tuple[Sequence[str], str]]) -> str:
  """``'3 <what>: a, b, c; 1 <what>: d'`` for the non-empty name groups."""
  return '; '.join(f'{len(names)} {what}: {name_list(names)}'
                   for names, what in groups if names)


def index_by_key(
    folder: str, names: Sequence[str], key: Callable[[str], str]
) -> dict[str, str]:
  """``{key(name): name}``; two files with one key is an error naming both."""
  by_key: dict[str, str] = {}
  for n in names:
    k = key(n)
    if k in by_key:
      raise ValueError(
          f'Ambiguous pairing in {folder}: {by_key[k]} and {n} both match '
          f'key {k!r}.'
      )
    by_key[k] = n
  return by_key


def check_index(index: int, length: int, what: str) -> int:
  """``int(index)`` of a random-access source of ``length`` ``what``.

  Raises:
    IndexError: unless ``-length <= index < length``.
  """
  index = int(index)
  if not -length <= index < length:
    raise IndexError(f'Index {index} out of range for {length} {what}.')
  return index


def pair_by_key(
    lq_dir: str, gt_dir: str, key: Callable[[str], str]
) -> list[tuple[str, str]]:
  """``(lq name, gt name)`` pairs of two folders, sorted by key.

  Every file must have exactly one partner; all unmatched files are listed
  in the error.

  Args:
    lq_dir: folder of degraded inputs.
    gt_dir: folder of ground truths.
    key: pairing key of a file name.

  Raises:
    FileNotFoundError: a folder is missing.
    ValueError: an empty folder, an ambiguous key or unmatched files.
  """
  lq = index_by_key(lq_dir, list_images(lq_dir, 'lq'), key)
  gt = index_by_key(gt_dir, list_images(gt_dir, 'gt'), key)
  lq_only = sorted(lq[k] for k in lq.keys() - gt.keys())
  gt_only = sorted(gt[k] for k in gt.keys() - lq.keys())
  if lq_only or gt_only:
    raise ValueError('Unmatched image pairs. ' + unmatched([
        (lq_only, f'lq files without gt in {gt_dir}'),
        (gt_only, f'gt files without lq in {lq_dir}')]))
  return [(lq[k], gt[k]) for k in sorted(lq)]


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
    pairs = pair_by_key(
        self.lq_dir, self.gt_dir,
        functools.partial(match_key, prefix_match=prefix_match))
    self.keys = [match_key(lq, prefix_match) for lq, _ in pairs]
    self.lq_paths = [os.path.join(self.lq_dir, lq) for lq, _ in pairs]
    self.gt_paths = [os.path.join(self.gt_dir, gt) for _, gt in pairs]
    self.names = [os.path.splitext(lq)[0] for lq, _ in pairs]
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
    index = check_index(index, len(self), 'pairs')
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

  :func:`restorect_jax.ops.dihedral.dihedral` on the first two axes: ``k //
  2`` counter-clockwise quarter turns, then a vertical flip when ``k`` is
  odd (the reference's augmentation modes 0..7).

  Returns:
    The transformed image (contiguous copy).
  """
  return np.ascontiguousarray(dihedral_lib.dihedral(img, k))


def augment_dihedral(
    lq: np.ndarray, gt: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
  """Applies the same dihedral transform ``k`` (0..7) to ``lq`` and ``gt``."""
  return dihedral(lq, k), dihedral(gt, k)


# Bottom/right mirror padding with the edge repeated (cv2.BORDER_REFLECT).
reflect_pad_to = padding.symmetric_pad_to_min


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


def _as_float32(img: np.ndarray) -> np.ndarray:
  """uint8 → [0, 1] (:func:`quantize.uint8_to_float32`); float → float32."""
  img = np.asarray(img)
  if img.dtype == np.uint8:
    return quantize.uint8_to_float32(img)
  if not np.issubdtype(img.dtype, np.floating):
    raise ValueError(f'Expected uint8 or float pixels, got {img.dtype}.')
  return img.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------
# Resizing (the reference's cv2.resize INTER_CUBIC modes).
# ----------------------------------------------------------------------------


def _check_resize(mode: str, size: int) -> None:
  if mode not in RESIZE_MODES:
    raise ValueError(
        f'resize must be one of {", ".join(RESIZE_MODES)}; got {mode!r}.'
    )
  if mode == 'square' and int(size) < 1:
    raise ValueError(f"resize='square' needs resize_size >= 1, got {size}.")


def resized_shape(
    h: int, w: int, mode: ResizeMode, *, size: int = 512
) -> tuple[int, int]:
  """(height, width) an h × w image has after resize ``mode``.

  * ``'none'``: ``(h, w)``.
  * ``'square'``: ``(size, size)``.
  * ``'multiple_of_32'``: if ``max(h, w) > 2048`` the long side becomes 2048
    and the short side ``floor(short * 2048 / long)`` (at least 1); then each
    side is rounded up to a multiple of 32. E.g. 400×600 → 416×608,
    3000×4000 → 1536×2048, 64×96 unchanged. The rule of the reference's
    ``paired_scale_BAID`` (SICE, SID, BAID, FiveK).

  Args:
    h: image height.
    w: image width.
    mode: ``'none'``, ``'square'`` or ``'multiple_of_32'``.
    size: the side for ``'square'``.

  Returns:
    The resized (height, width).
  """
  _check_resize(mode, size)
  h, w = int(h), int(w)
  if h < 1 or w < 1:
    raise ValueError(f'Image sides must be >= 1, got {h}x{w}.')
  if mode == 'none':
    return h, w
  if mode == 'square':
    return int(size), int(size)
  if max(h, w) > RESIZE_MAX_SIDE:
    if h > w:
      h, w = RESIZE_MAX_SIDE, max(1, w * RESIZE_MAX_SIDE // h)
    else:
      h, w = max(1, h * RESIZE_MAX_SIDE // w), RESIZE_MAX_SIDE
  return (
      padding.round_up(h, RESIZE_MULTIPLE),
      padding.round_up(w, RESIZE_MULTIPLE),
  )


def resize_bicubic(img: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize as ``cv2.resize(img, (width, height), INTER_CUBIC)``.

  uint8 input is first scaled to [0, 1] (:func:`quantize.uint8_to_float32`);
  then :func:`restorect_jax.ops.resample.resize_bicubic`: float32, not
  clipped, width first, a side that keeps its length copied exactly.

  Args:
    img: (H, W) or (H, W, C) uint8 or float image.
    height: output height (>= 1).
    width: output width (>= 1).

  Returns:
    float32 (height, width[, C]), a new array.
  """
  return resample.resize_bicubic(_as_float32(img), height, width)


def resize_pair(
    lq: np.ndarray,
    gt: np.ndarray,
    mode: ResizeMode,
    *,
    size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
  """Resizes ``lq`` and ``gt`` jointly to :func:`resized_shape` of ``gt``.

  ``mode='none'`` returns the inputs unchanged (uint8 stays uint8);
  otherwise both come back float32 from :func:`resize_bicubic`.

  Args:
    lq: (H, W, C) input.
    gt: (H, W, C) target, same height and width.
    mode: see :func:`resized_shape`.
    size: the side for ``'square'``.

  Returns:
    ``(lq, gt)`` resized.
  """
  if lq.shape[:2] != gt.shape[:2]:
    raise ValueError(f'lq {lq.shape} and gt {gt.shape} differ in size.')
  if mode == 'none':
    _check_resize(mode, size)
    return lq, gt
  h, w = resized_shape(*gt.shape[:2], mode, size=size)
  return resize_bicubic(lq, h, w), resize_bicubic(gt, h, w)


def _resize_record(record: Mapping[str, Any], mode: ResizeMode, size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """:func:`resize_pair` of a record's ``lq`` and ``gt``."""
  return resize_pair(np.asarray(record['lq']), np.asarray(record['gt']), mode,
                     size=size)


class PairedResize(grain.transforms.Map):
  """Joint bicubic resize of a record's ``lq`` and ``gt`` (other keys kept)."""

  def __init__(self, mode: ResizeMode, size: int = 512):
    _check_resize(mode, size)
    self.mode = mode
    self.size = int(size)

  def map(self, element: Mapping[str, Any]) -> dict[str, Any]:
    lq, gt = _resize_record(element, self.mode, self.size)
    return {**element, 'lq': lq, 'gt': gt}


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
    return {'lq': _as_float32(lq), 'gt': _as_float32(gt)}


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


def _plain_arrays(element: Any) -> Any:
  """Copies arrays out of grain's shared memory into ordinary numpy arrays.

  Batches from worker processes arrive as ``SharedMemoryArray``s whose
  segment is freed when the array is garbage-collected; a plain copy frees
  it at once and lets callers keep batches (e.g. in a list) safely.
  """
  if isinstance(element, dict):
    return {k: _plain_arrays(v) for k, v in element.items()}
  if isinstance(element, np.ndarray) and type(element) is not np.ndarray:
    return np.array(element, copy=True)
  return element


def _ensure_absl_flags_parsed() -> None:
  """Marks absl flags parsed outside ``absl.app`` (tests, notebooks).

  grain 0.2.18's ``mp_prefetch`` reads one of its absl flags (worker
  profiling) and raises ``UnparsedFlagAccessError`` when the program has not
  parsed flags; with ``absl.app.run`` (``restorect_jax.main``) they already
  are and nothing changes. Unparsed flags keep their defaults.
  """
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


@dataclasses.dataclass(frozen=True)
class _WorkerPlan:
  """A MapDataset and how worker processes read it."""

  map_ds: grain.MapDataset
  read_options: grain.ReadOptions
  mp_options: grain.MultiprocessingOptions

  def iterate_from(self, start: int) -> Any:
    """grain's ``mp_prefetch`` iterator over ``map_ds[start:]``."""
    ds = self.map_ds[start:].to_iter_dataset(self.read_options)
    return iter(ds.mp_prefetch(self.mp_options))


class _WorkerPrefetchIterator(grain.DatasetIterator):
  """Iterates ``map_ds[k:]`` through grain's ``mp_prefetch``.

  The state is ``{'next_index': k}``, the number of elements consumed: the
  format of the in-process iterator, so a checkpoint restores with any
  ``num_workers`` (grain's own multiprocess state is tied to the worker
  count). ``set_state`` restarts the workers at ``map_ds[k:]``, which holds
  the same elements because every transform is seeded by record index.
  """

  def __init__(self, plan: _WorkerPlan):
    super().__init__()
    self._plan = plan
    self._next_index = 0
    self._it = None
    self._exhausted = False

  def __next__(self) -> Any:
    if self._exhausted:
      raise StopIteration
    if self._it is None:
      self._it = self._plan.iterate_from(self._next_index)
    try:
      element = next(self._it)
    except StopIteration:
      self.close()  # Stops the workers and frees their buffers.
      self._exhausted = True
      raise
    self._next_index += 1
    return _plain_arrays(element)

  def get_state(self) -> dict[str, Any]:
    return {'next_index': self._next_index}

  def set_state(self, state: dict[str, Any]) -> None:
    self.close()
    self._next_index = int(state['next_index'])
    self._exhausted = False

  def close(self) -> None:
    if self._it is not None:
      self._it.close()
      self._it = None


class _WorkerPrefetchIterDataset(grain.IterDataset):
  """``map_ds`` read by worker processes with a worker-count-free state."""

  def __init__(self, plan: _WorkerPlan):
    super().__init__()
    self._plan = plan

  def __iter__(self) -> _WorkerPrefetchIterator:
    _ensure_absl_flags_parsed()
    return _WorkerPrefetchIterator(self._plan)

  def __str__(self) -> str:
    return (
        f'WorkerPrefetchIterDataset(num_workers='
        f'{self._plan.mp_options.num_workers})'
    )


def _to_iter_dataset(
    ds: grain.MapDataset,
    read_options: grain.ReadOptions,
    num_workers: int,
    worker_buffer_size: int,
) -> grain.IterDataset:
  """``ds.to_iter_dataset``, with worker processes when ``num_workers > 0``."""
  if num_workers < 0 or worker_buffer_size < 1:
    raise ValueError(
        'Need num_workers >= 0 and worker_buffer_size >= 1, got '
        f'{num_workers}, {worker_buffer_size}.'
    )
  if num_workers == 0:
    return ds.to_iter_dataset(read_options)
  return _WorkerPrefetchIterDataset(
      _WorkerPlan(
          ds,
          read_options,
          grain.MultiprocessingOptions(
              num_workers=num_workers,
              per_worker_buffer_size=worker_buffer_size,
          ),
      )
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
    resize: ResizeMode = 'none',
    resize_size: int = 512,
    num_workers: int = 0,
    worker_buffer_size: int = 1,
) -> grain.IterDataset:
  """Training batches of random paired patches.

  Pipeline: ``MapDataset.source(source)[shard_index::shard_count]`` →
  ``shuffle`` (reshuffled every epoch) → ``repeat(num_epochs)`` →
  :class:`PairedResize` (only when ``resize != 'none'``) →
  :class:`PairedCropAugment` (seeded per record from ``seed`` and the global
  record index, so every epoch gets new crops) →
  ``batch(drop_remainder=True)`` → ``to_iter_dataset`` → ``mp_prefetch``
  (only when ``num_workers > 0``).
  The stream is a pure function of the source, the arguments and ``seed``,
  and does not depend on ``num_threads`` or ``num_workers`` (each worker
  process computes every ``num_workers``-th batch and grain interleaves them
  back in order). The iterator's ``get_state()``/``set_state()`` resume it
  exactly (use ``grain.checkpoint.CheckpointSave/Restore`` with Orbax, or
  save the JSON-able dict); the state is ``{'next_index': batches consumed}``
  whatever ``num_workers`` is, so a run may resume with a different worker
  count. Close an iterator with workers (``it.close()``) when done to stop
  its processes; ``set_state`` restarts them at the restored position.

  Sharding for multi-host runs: pass ``shard_index=jax.process_index()`` and
  ``shard_count=jax.process_count()``; the hosts read disjoint record sets
  (``source[i::shard_count]``) that together cover the source, each with its
  own shuffle, so every host yields ``batch_size`` samples per step.

  With ``resize='square'`` and ``patch_size == resize_size`` the crop keeps
  the whole resized image, which is the reference's ``chaos`` (UIEB, LSUI)
  training sample; with ``'multiple_of_32'`` the resized pair is then
  padded/cropped to ``patch_size`` as for every other set.

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
    resize: ``'none'``, ``'square'`` or ``'multiple_of_32'`` (see
      :func:`resized_shape`), applied to lq and gt before the crop.
    resize_size: the side for ``resize='square'`` (the reference trains
      UIEB/LSUI at 512).
    num_workers: worker processes running the per-record pipeline (grain
      ``mp_prefetch``); 0 runs it in this process.
    worker_buffer_size: batches each worker computes ahead.

  Returns:
    A ``grain.IterDataset`` of ``{'lq': (B, P, P, 3) float32, 'gt': (B, P, P,
    3) float32}`` with values in [0, 1] (bicubic overshoot can leave it
    after a resize, as in the reference).
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
  _check_resize(resize, resize_size)
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
  if resize != 'none':
    ds = ds.map(PairedResize(resize, resize_size))
  ds = ds.random_map(
      PairedCropAugment(patch_size, geometric_augs=geometric_augs),
      seed=map_seed,
  )
  ds = ds.batch(batch_size, drop_remainder=True)
  return _to_iter_dataset(
      ds,
      _read_options(num_threads, prefetch_buffer_size),
      num_workers,
      worker_buffer_size,
  )


class EvalTransform(grain.transforms.Map):
  """Eval record → float32 lq/gt, optional resize, optional lq padding."""

  def __init__(
      self,
      *,
      batch_axis: bool = True,
      resize: ResizeMode = 'none',
      resize_size: int = 256,
      pad_multiple: int = 0,
      bucket: bool = False,
      bucket_min_side: int = 64,
      bucket_per_octave: int = 4,
  ):
    _check_resize(resize, resize_size)
    if pad_multiple < 0:
      raise ValueError(f'pad_multiple must be >= 0, got {pad_multiple}.')
    self.batch_axis = batch_axis
    self.resize = resize
    self.resize_size = int(resize_size)
    self.pad_multiple = int(pad_multiple)
    self.bucket = bucket
    self.bucket_min_side = int(bucket_min_side)
    self.bucket_per_octave = int(bucket_per_octave)

  def padded_shape(self, h: int, w: int) -> tuple[int, int]:
    """Shape ``lq`` is padded to (``(h, w)`` when padding is off)."""
    if self.bucket:
      return tiling.bucket_shape(
          h,
          w,
          multiple=self.pad_multiple or 8,
          min_side=self.bucket_min_side,
          per_octave=self.bucket_per_octave,
      )
    if self.pad_multiple:
      return (
          padding.round_up(h, self.pad_multiple),
          padding.round_up(w, self.pad_multiple),
      )
    return h, w

  def map(self, record: Mapping[str, Any]) -> dict[str, Any]:
    lq, gt = _resize_record(record, self.resize, self.resize_size)
    lq, gt = _as_float32(lq), _as_float32(gt)
    h, w = gt.shape[:2]
    lq = padding.pad_to(lq, self.padded_shape(h, w))
    if self.batch_axis:
      lq, gt = lq[None], gt[None]
    name = record['name']
    if isinstance(name, bytes):  # TFDS / array_record strings.
      name = name.decode('utf-8')
    return {'lq': lq, 'gt': gt, 'name': str(name), 'hw': (h, w)}


def eval_dataset(
    source: Any,
    *,
    shard_index: int = 0,
    shard_count: int = 1,
    batch_axis: bool = True,
    num_threads: int = 0,
    prefetch_buffer_size: int = 4,
    resize: ResizeMode = 'none',
    resize_size: int = 256,
    pad_multiple: int = 0,
    bucket: bool = False,
    bucket_min_side: int = 64,
    bucket_per_octave: int = 4,
) -> grain.IterDataset:
  """Full-size evaluation images, one per element, in source order.

  Per record: optional joint resize of lq and gt (:func:`resize_pair`; the
  reference tests UIEB/LSUI with ``'square'`` at 256 and SICE/SID/BAID/FiveK
  with ``'multiple_of_32'``), then optional reflect padding of ``lq`` on the
  bottom/right (:func:`padding.pad_to`, numpy ``'reflect'`` as the
  reference's inference ``F.pad``): to the next multiple of ``pad_multiple``,
  or with ``bucket=True`` to :func:`tiling.bucket_shape` (sides rounded up to
  a few sizes per octave, multiples of ``pad_multiple`` or 8), so a folder of
  mixed sizes needs only a handful of compilations. ``gt`` is never padded;
  ``hw`` is its (height, width), the window to crop a prediction to. Padding
  is off by default (the predictors pad for themselves). The returned
  dataset can be iterated any number of times.

  Args:
    source: random-access source of ``{'lq', 'gt', 'name'}`` records.
    shard_index: this process's shard.
    shard_count: number of shards (records ``shard_index::shard_count``).
    batch_axis: give images a leading batch axis of 1; False yields
      (H, W, 3) arrays.
    num_threads: record-reading threads; 0 reads in the calling thread.
    prefetch_buffer_size: records buffered ahead when ``num_threads > 0``.
    resize: ``'none'``, ``'square'`` or ``'multiple_of_32'``.
    resize_size: the side for ``resize='square'`` (reference test: 256).
    pad_multiple: pad ``lq`` to multiples of this (0: no padding unless
      ``bucket``).
    bucket: pad ``lq`` to its shape bucket instead.
    bucket_min_side: smallest bucket (:func:`tiling.bucket_side`).
    bucket_per_octave: buckets per doubling of a side.

  Returns:
    A ``grain.IterDataset`` of ``{'lq': (1, H', W', 3) float32, 'gt': (1, H,
    W, 3) float32, 'name': str, 'hw': (H, W)}`` (no leading 1 when
    ``batch_axis=False``); ``(H', W') = (H, W)`` without padding. H and W
    vary per image.
  """
  _check_shard(shard_index, shard_count)
  transform = EvalTransform(
      batch_axis=batch_axis,
      resize=resize,
      resize_size=resize_size,
      pad_multiple=pad_multiple,
      bucket=bucket,
      bucket_min_side=bucket_min_side,
      bucket_per_octave=bucket_per_octave,
  )
  ds = grain.MapDataset.source(source)[shard_index::shard_count]
  ds = ds.map(transform)
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
