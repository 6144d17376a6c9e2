"""Shared logic of the restoration TFDS builders (manual_dir, no download).

Every builder reads a local folder laid out as the public download unpacks
(its ``TREE``), pairs files by name, decodes each image with
:func:`restorect_jax.data.image_io.read_image_uint8` and stores it losslessly as
PNG, so a record's pixels equal the decoded file. Records are written in a
fixed order (``disable_shuffling``): sorted by record name unless a list
file fixes the order. Output is ``array_record``, read with
:func:`restorect_jax.datasets.data_source` (no TensorFlow needed).

Record kinds (``KIND``):

* ``'paired'`` — features ``lq``, ``gt``, ``name``.
* ``'unpaired'`` — ``lq``, ``name`` (no ground truth exists).
* ``'clean'`` — ``gt``, ``name`` (clean images only; the degraded input is
  synthesised later, e.g. Gaussian noise for denoising).

Bad input never shrinks a split silently; at prepare time it raises:

* a missing manual folder or sub-folder → :class:`folders.ManualDirError`
  naming the missing path and showing the expected tree;
* files without a partner, or two files with one pairing key → ``ValueError``
  listing the names;
* a folder whose names differ from a shipped split list →
  :class:`folders.SplitMismatchError` listing missing and extra names;
* corrupt or truncated files →
  :class:`restorect_jax.data.image_io.ImageReadError` naming the file; an
  lq/gt size mismatch → ``ValueError`` naming both.

Documented conversions (done by ``image_io``, recorded per file in the
metadata's ``conversions`` and logged): grayscale → RGB by repetition, alpha
dropped (not composited), 16-bit → 8-bit by the high byte, palette / CMYK →
RGB via Pillow. Hidden files and files without an image extension are not
images and are ignored, as in ``input_pipeline.PairedFolderSource``.

The metadata (``metadata.json`` beside the records) holds per split the
record names in order, their SHA-256 (:func:`splits.names_sha256`), the
split list used and its hash, every image's (H, W) and the SHA-256 of each
decoded image (used by the overlap check).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import inspect
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from restorect_jax.data import image_io
from restorect_jax.datasets import folders
from restorect_jax.datasets import splits as splits_lib
from restorect_jax.datasets.folders import Example

KINDS = {'paired': ('lq', 'gt'), 'unpaired': ('lq',), 'clean': ('gt',)}
PNG_COMPRESS_LEVEL = 1


# ----------------------------------------------------------------------------
# Image encoding, hashing, conversions.
# ----------------------------------------------------------------------------


def encode_png(img: np.ndarray) -> bytes:
  """Lossless PNG bytes of a uint8 (H, W, 3) image."""
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format='PNG',
                            compress_level=PNG_COMPRESS_LEVEL)
  return buf.getvalue()


def pixel_sha256(img: np.ndarray) -> str:
  """SHA-256 of a decoded image (shape and pixels), not of its file."""
  arr = np.ascontiguousarray(img)
  head = 'x'.join(str(d) for d in arr.shape).encode() + b':'
  return hashlib.sha256(head + arr.tobytes()).hexdigest()


_GRAY16 = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def describe_conversion(path: str) -> str | None:
  """How ``image_io`` turns this file into 8-bit RGB, or None if it is."""
  with open(path, 'rb') as f:
    head = f.read(26)
  png16 = head[:8] == b'\x89PNG\r\n\x1a\n' and len(head) > 24 and (
      head[24] == 16)
  with Image.open(path) as im:
    mode = im.mode
  if mode == 'RGB':
    return '16-bit RGB -> 8-bit (high byte)' if png16 else None
  if mode in _GRAY16:
    return f'16-bit grayscale ({mode}) -> RGB (high byte, repeated)'
  if mode in ('1', 'L'):
    return f'grayscale ({mode}) -> RGB (repeated)'
  if mode in ('LA', 'La'):
    return f'grayscale+alpha ({mode}) -> RGB (alpha dropped)'
  if mode in ('RGBA', 'RGBa'):
    return f'{mode} -> RGB (alpha dropped, not composited)'
  return f'{mode} -> RGB (Pillow convert)'


# ----------------------------------------------------------------------------
# Builders.
# ----------------------------------------------------------------------------


def _instructions(tree: str) -> str:
  return ('Nothing is downloaded. Unpack the public download and pass its '
          'folder as --manual_dir (python -m restorect_jax.datasets.prepare '
          '--dataset=NAME --manual_dir=DIR). Expected tree:\n' + tree)


class _CodeDatasetInfo(tfds.core.DatasetInfo):
  """A DatasetInfo that never looks on GCS for pre-computed info.

  tfds calls ``initialize_from_bucket`` whenever a builder's data dir holds
  no prepared version (every layout-only builder of the registry); it makes
  a temporary folder before finding GCS disabled and never removes it: 15
  empty ``/tmp/tmp*tfds`` folders left by every process that read the
  registry. These builders' info lives in code.
  """

  def initialize_from_bucket(self) -> None:
    return None


class RestorationBuilder(tfds.core.GeneratorBasedBuilder,
                         skip_registration=True):
  """Base of every builder: manual folder → PNG records + metadata.

  Subclasses set ``name``, ``KIND``, ``TREE`` (the expected folder tree,
  shown in errors and instructions), ``SPLIT_RULE`` and optionally
  ``EXTRA_METADATA``, and implement :meth:`_examples`.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  KIND = 'paired'
  TREE = ''
  SPLIT_RULE = ''
  HOMEPAGE = ''
  EXTRA_METADATA: Mapping[str, Any] = {}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions('')

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds resolves packaged builders through importlib_resources (not a
    # dependency here); the defining file is all it needs.
    return epath.Path(inspect.getfile(cls))

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if 'TREE' in cls.__dict__:
      cls.MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(cls.TREE)

  # -- hooks ------------------------------------------------------------------

  def expected_tree(self) -> str:
    """The expected tree (per config where configs differ)."""
    return self.TREE

  def _split_rule(self) -> str:
    return self.SPLIT_RULE

  def _extra_metadata(self) -> dict[str, Any]:
    return dict(self.EXTRA_METADATA)

  def _split_specs(self) -> Mapping[str, FolderSplit]:
    """``{split: FolderSplit}``: folders and pairing rule of each split."""
    raise NotImplementedError

  def _examples(self, root: str) -> dict[str, list[Example]]:
    """``{split: examples in record order}`` from the manual folder."""
    raise NotImplementedError

  # -- layout (read by restorect_jax.datasets.registry) -----------------------

  def split_specs(self) -> dict[str, FolderSplit]:
    """Each split's folders, relative to the manual folder, and its rule.

    ``FolderSplit.key`` names the pairing rule: a file-name key of
    :data:`folders.KEYS` or a builder rule of :data:`folders.RULES`.
    """
    return dict(self._split_specs())

  def split_files(self, split: str) -> tuple[str, ...]:
    """Files (not folders) that ``split`` needs, relative to the root."""
    del split
    return ()

  def split_examples(self, root: str, split: str) -> list[Example]:
    """One split's examples in record order, read from the folder ``root``.

    The same pairing as :meth:`_examples` (the one used by ``prepare``);
    builders whose splits are independent read only that split's folders.

    Raises:
      ValueError: ``split`` is not a split of this builder, or the files
        do not pair (see the module docstring).
      ManualDirError: a folder the split needs is missing.
    """
    self._check_split(split)
    return self._examples(os.fspath(root))[split]

  def _check_split(self, split: str) -> None:
    specs = self.split_specs()
    if split not in specs:
      raise ValueError(f'{self.name} has no split {split!r}; splits: '
                       f'{", ".join(specs)}.')

  # -- tfds -------------------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    image = lambda: tfds.features.Image(shape=(None, None, 3),
                                        encoding_format='png')
    features = {role: image() for role in KINDS[self.KIND]}
    features['name'] = tfds.features.Text()
    return _CodeDatasetInfo(
        builder=self,
        description=(self.__doc__ or '').strip(),
        features=tfds.features.FeaturesDict(features),
        homepage=self.HOMEPAGE or None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    tree = self.expected_tree()
    try:
      root = os.fspath(dl_manager.manual_dir)
    except AssertionError as e:  # tfds: missing or empty manual dir.
      raise folders.ManualDirError(
          f'{e}\nExpected this tree:\n{tree}') from None
    per_split = self._examples(root)
    md = self.info.metadata
    md.clear()
    md.update(
        dataset=self.name,
        config=self.builder_config.name if self.builder_config else None,
        kind=self.KIND,
        roles=list(KINDS[self.KIND]),
        manual_dir=os.path.abspath(root),
        split_rule=self._split_rule(),
        extra=self._extra_metadata(),
        splits={},
    )
    generators = {}
    for split, examples in per_split.items():
      names = [e.name for e in examples]
      dupes = sorted(n for n, c in collections.Counter(names).items() if c > 1)
      if dupes:
        raise ValueError(f'Split {split!r} has repeated record names: '
                         f'{folders.name_list(dupes)}.')
      if not examples:
        raise ValueError(f'Split {split!r} of {self.name} is empty.')
      md['splits'][split] = dict(
          count=len(names), names=names,
          names_sha256=splits_lib.names_sha256(names),
          **self._split_info(split))
      generators[split] = self._generate_examples(split, examples)
    return generators

  def _split_info(self, split: str) -> dict[str, Any]:
    """Extra per-split metadata (e.g. the split list used)."""
    del split
    return {}

  def _generate_examples(
      self, split: str, examples: Sequence[Example]
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    roles = KINDS[self.KIND]
    sizes, hashes, conversions = {}, {}, {}
    for ex in examples:
      record: dict[str, Any] = {'name': ex.name}
      arrays = {}
      for role in roles:
        path = getattr(ex, role)
        arrays[role] = image_io.read_image_uint8(path)
        change = describe_conversion(path)
        if change:
          conversions[path] = change
      if len(arrays) == 2 and arrays['lq'].shape != arrays['gt'].shape:
        (lh, lw), (gh, gw) = arrays['lq'].shape[:2], arrays['gt'].shape[:2]
        raise ValueError(f'Size mismatch: {ex.lq} is {lh}x{lw} (HxW) but '
                         f'{ex.gt} is {gh}x{gw}.')
      first = arrays[roles[0]]
      sizes[ex.name] = list(first.shape[:2])
      hashes[ex.name] = {r: pixel_sha256(a) for r, a in arrays.items()}
      for role, arr in arrays.items():
        record[role] = encode_png(arr)
      yield ex.name, record
    if conversions:
      logging.warning(
          '%s/%s: %d files converted to 8-bit RGB (recorded in metadata '
          '"conversions"): %s', self.name, split, len(conversions),
          folders.name_list(
              [f'{p} [{c}]' for p, c in sorted(conversions.items())], 5))
    self.info.metadata['splits'][split].update(
        sizes=sizes, pixel_sha256=hashes, conversions=conversions)


@dataclasses.dataclass(frozen=True)
class FolderSplit:
  """Where one split lives under the manual folder, and how files pair.

  Attributes:
    lq: relative folder of inputs (alternatives: a tuple, first existing
      wins), or None for ``'clean'`` sets.
    gt: relative folder of ground truths, or None for ``'unpaired'`` sets.
    key: name of the pairing rule: a file-name key of
      :data:`folders.KEYS` (``'stem'``, ``'low_normal_prefix'``, ...) for
      two folders; for one folder ``'same_file'`` (clean) or ``'lq_only'``
      (unpaired); builders with their own rule name it from
      :data:`folders.RULES`.
    names_file: shipped split list the record names must equal (its order
      becomes the record order).
  """

  lq: str | tuple[str, ...] | None
  gt: str | tuple[str, ...] | None
  key: str = 'stem'
  names_file: str | None = None

  def folders(self) -> dict[str, str | tuple[str, ...]]:
    """``{role: relative folder or alternatives}`` of the roles present."""
    return {r: getattr(self, r) for r in ('lq', 'gt')
            if getattr(self, r) is not None}


def folder_split_examples(root: str, spec: FolderSplit, tree: str,
                          where: str) -> list[Example]:
  """The examples of one folder split under ``root``, in record order.

  The one implementation of folder pairing: :class:`FolderBuilder` (for
  ``prepare``) and the registry (reading folders directly) both call it.

  Args:
    root: the unpacked download (manual folder / data dir).
    spec: the split's folders and rule.
    tree: the expected tree, shown when a folder is missing.
    where: label for a split-list mismatch (``'lol_v1 split test'``).

  Returns:
    Examples sorted by record name, or in the split list's order.
  """
  d = {r: folders.require_dir(root, rel, tree)
       for r, rel in spec.folders().items()}
  if len(d) == 2:
    examples = folders.pair_folders(d['lq'], d['gt'],
                                    key=folders.pairing_key(spec.key))
  else:
    (role, folder), = d.items()
    examples = folders.single_folder(folder, role)
  if spec.names_file:
    listed = splits_lib.read_split_file(spec.names_file)
    examples = folders.order_by_list(
        examples, listed, f'{where} ({next(iter(d.values()))})',
        spec.names_file)
  return examples


class FolderBuilder(RestorationBuilder, skip_registration=True):
  """Builder whose splits are folders (pairs, or single folders)."""

  SPLITS: Mapping[str, FolderSplit] = {}

  def _split_specs(self) -> Mapping[str, FolderSplit]:
    return self.SPLITS

  def _split_info(self, split: str) -> dict[str, Any]:
    spec = self._split_specs()[split]
    info = dict(folders=self._folders.get(split, {}))
    if spec.names_file:
      info.update(names_file=spec.names_file,
                  names_file_sha256=splits_lib.file_sha256(
                      os.path.join(splits_lib.SPLITS_DIR, spec.names_file)))
    return info

  def split_examples(self, root: str, split: str) -> list[Example]:
    self._check_split(split)
    return folder_split_examples(
        os.fspath(root), self._split_specs()[split], self.expected_tree(),
        f'{self.name} split {split!r}')

  def _examples(self, root: str) -> dict[str, list[Example]]:
    tree = self.expected_tree()
    folders.check_root(root, tree)
    self._folders = {}
    for split, spec in self._split_specs().items():  # Check every folder first.
      self._folders[split] = {
          r: os.path.relpath(folders.require_dir(root, rel, tree), root)
          for r, rel in spec.folders().items()}
    return {split: self.split_examples(root, split)
            for split in self._split_specs()}
