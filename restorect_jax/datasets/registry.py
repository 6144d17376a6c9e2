"""The one registry of dataset layouts: name → folders, pairing, noise.

Every dataset name a config or CLI accepts has a :class:`Layout`: its splits'
folders relative to a ``data_dir`` laid out as the public download unpacks,
the pairing rule of each split, the eval split, and the σ of synthesised
noise. :func:`paired_files` lists a split's ``(name, lq, gt)`` files and
:func:`folder_source` reads them as a grain source, straight from the
folders (no ``prepare`` needed).

Names (:func:`names`):

* builder names (:data:`BUILDERS`; ``'name/config'`` selects a config):
  ``lol_v1``, ``lol_v2_real``, ``lol_v2_syn``, ``lol_blur``, ``sid_sony``,
  ``sice``, ``baid``, ``uieb``, ``lsui``, ``fivek``, ``unpaired_llie``,
  ``fundus``, ``rain100l``, ``raindrop``, ``denoise``. The layout is the
  builder's: files pair by the builder's own code, so reading the folders
  and ``datasets.prepare`` give the same records in the same order.
* IR-Flow task names: ``derain`` (the ``rain100l`` layout), ``raindrop``,
  ``denoise`` (builders above), ``dehaze`` (RESIDE-6K), ``deblur`` (GoPro,
  Restormer's ``Datasets/`` layout), ``sr`` (DIV2K, unknown ×4).
* ``demo``: the bundled low-light demo set
  (:mod:`restorect_jax.data.demo_data`), and ``demo_denoise``: its clean
  halves with σ = 25/255 Gaussian noise (the IR-Flow task ``demo``).

``folder`` (your own folders) has no fixed layout: :func:`pair_dirs` pairs
two folders with a named rule. The rules are :data:`folders.KEYS` (file-name
keys: ``stem``, ``underscore_prefix``, ``low_normal_prefix``,
``rain_prefix``, ``x4_suffix``) and :data:`folders.RULES` (``same_file``,
``lq_only``, and builder rules). ``python -m restorect_jax.datasets.prepare
--dataset=NAME --show_tree`` prints any name's expected tree.

Example::

  from restorect_jax import datasets
  src = datasets.folder_source('lol_v2_real', '/data/LOL-v2', 'train')
  files = datasets.paired_files('raindrop', '/data/RainDrop', 'test')
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from restorect_jax.data import image_io
from restorect_jax.data import input_pipeline
from restorect_jax.datasets import backlit
from restorect_jax.datasets import base
from restorect_jax.datasets import fivek
from restorect_jax.datasets import folders
from restorect_jax.datasets import irflow_sets
from restorect_jax.datasets import lol
from restorect_jax.datasets import sice
from restorect_jax.datasets import sid
from restorect_jax.datasets import uie
from restorect_jax.datasets import unpaired

BUILDERS: dict[str, type[base.RestorationBuilder]] = {
    cls.name: cls for cls in (
        lol.LolV1, lol.LolV2Real, lol.LolV2Syn, lol.LolBlur, sid.SidSony,
        sice.Sice, backlit.Baid, uie.Uieb, uie.Lsui, fivek.Fivek,
        unpaired.UnpairedLlie, unpaired.Fundus, irflow_sets.Rain100l,
        irflow_sets.Raindrop, irflow_sets.Denoise)
}

KINDS = tuple(base.KINDS)  # 'paired', 'unpaired', 'clean'
Files = list[tuple[str, str, str | None]]

_SHOW_TREE = ('python -m restorect_jax.datasets.prepare --dataset={name} '
              '--show_tree')


# ----------------------------------------------------------------------------
# Builders by name.
# ----------------------------------------------------------------------------


def parse_builder_name(name: str
                       ) -> tuple[type[base.RestorationBuilder], str | None]:
  """``'name'`` / ``'name/config'`` → (builder class, config or None)."""
  builder_name, _, config = name.partition('/')
  if builder_name not in BUILDERS:
    raise ValueError(f'Unknown dataset {builder_name!r}; known: '
                     f'{sorted(BUILDERS)}.')
  cls = BUILDERS[builder_name]
  configs = [c.name for c in (cls.BUILDER_CONFIGS or [])]
  if config and config not in configs:
    raise ValueError(f'{builder_name} has no config {config!r}; configs: '
                     f'{configs or "none"}.')
  if not config and configs:
    config = configs[0]
  return cls, config or None


def builder(name: str, data_dir: str | os.PathLike[str] | None = None
            ) -> base.RestorationBuilder:
  """The builder of ``'name'`` or ``'name/config'`` rooted at ``data_dir``."""
  cls, config = parse_builder_name(name)
  kwargs: dict[str, Any] = dict(file_format='array_record')
  if data_dir is not None:
    kwargs['data_dir'] = os.fspath(data_dir)
  if config:
    kwargs['config'] = config
  return cls(**kwargs)


@functools.lru_cache(maxsize=None)
def _layout_builder(name: str) -> base.RestorationBuilder:
  # Only the builder's layout code runs: its TFDS data dir is never read or
  # written, so point it at a folder that need not exist.
  return builder(name, os.path.join(tempfile.gettempdir(),
                                    'restorect_jax_layouts_unused'))


# ----------------------------------------------------------------------------
# Layouts.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a dataset's splits lie under its data dir and how files pair.

  Attributes:
    name: the registry name (``'lol_v2_real'``, ``'derain'``, ...).
    splits: ``{split: FolderSplit}``: the lq and gt folders relative to the
      data dir (a tuple lists alternatives, the first existing one wins;
      None: the role has no folder) and the pairing rule name
      (``FolderSplit.key``).
    tree: the expected tree (``prepare --show_tree``).
    kind: ``'paired'``, ``'clean'`` (gt only: lq is the gt file and noise
      of ``noise_sigma`` is added later) or ``'unpaired'`` (no gt).
    train_split: the training split, or None for test-only sets.
    eval_split: the evaluation split.
    noise_sigma: σ on [0, 1] of the Gaussian noise synthesised on the gt
      (``lq = gt + σ·N(0, 1)``, unclipped); 0 for stored inputs.
    builder: ``'name'`` / ``'name/config'`` of the builder whose code pairs
      the files (and that ``datasets.prepare`` takes), or None for a layout
      read from its folders only.
    files: ``{split: files}`` that a split needs besides its folders
      (SID's list files), relative to the data dir.
    description: one line on the set.
  """

  name: str
  splits: Mapping[str, base.FolderSplit]
  tree: str
  kind: str = 'paired'
  train_split: str | None = 'train'
  eval_split: str = 'test'
  noise_sigma: float = 0.0
  builder: str | None = None
  files: Mapping[str, tuple[str, ...]] = dataclasses.field(
      default_factory=dict)
  description: str = ''

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f'{self.name}: kind {self.kind!r} not in {KINDS}.')
    for split, spec in self.splits.items():
      if spec.key not in folders.KEYS and spec.key not in folders.RULES:
        raise ValueError(f'{self.name} {split}: unknown pairing rule '
                         f'{spec.key!r}.')
    for split in (self.train_split, self.eval_split):
      if split is not None and split not in self.splits:
        raise ValueError(f'{self.name}: split {split!r} not in '
                         f'{list(self.splits)}.')

  def pairing(self, split: str) -> str:
    """The pairing rule name of ``split`` (``folders.KEYS`` / ``RULES``)."""
    return self.splits[self.resolve_split(split)].key

  def resolve_split(self, split: str) -> str:
    """``split``, or the eval split for ``'test'`` where none has that name.

    E.g. RainDrop's ``'test'`` is ``test_a``, SICE's ``test_grad``.

    Raises:
      ValueError: any other name that is not a split (one line).
    """
    if split in self.splits:
      return split
    if split == 'test':
      return self.eval_split
    raise ValueError(f'{self.name} has no split {split!r}; splits: '
                     f'{", ".join(self.splits)}.')

  def show_tree_command(self) -> str:
    """The command that prints :attr:`tree`."""
    return _SHOW_TREE.format(name=self.name)

  def check(self, data_dir: str | os.PathLike[str], split: str) -> str:
    """Checks ``split``'s folders and files exist; returns the data dir.

    Raises:
      ManualDirError: one line naming the missing folder (or file), with a
        hint when ``data_dir`` is one level off, and the command that
        prints the expected tree.
    """
    split = self.resolve_split(split)
    root = os.fspath(data_dir or '')
    see = f'expected tree: {self.show_tree_command()}'
    if not root or not os.path.isdir(root):
      raise folders.ManualDirError(
          f'{self.name}: data dir {root or "(not set)"} is not a folder; '
          f'{see}')
    needed = [(rel, os.path.isdir, 'folder')
              for rel in self.splits[split].folders().values()]
    needed += [(rel, os.path.isfile, 'file')
               for rel in self.files.get(split, ())]
    for rel, exists, what in needed:
      alternatives = (rel,) if isinstance(rel, str) else tuple(rel)
      if not any(exists(os.path.join(root, a)) for a in alternatives):
        missing = ' or '.join(os.path.join(root, a) for a in alternatives)
        raise folders.ManualDirError(
            f'{self.name} {split}: missing {what} {missing}.'
            f'{folders.hint(root, alternatives[0])} {see}')
    return root

  def paired_files(self, data_dir: str | os.PathLike[str],
                   split: str) -> Files:
    """``[(name, lq path, gt path)]`` of ``split``, in record order.

    ``lq`` is the gt file for clean sets (denoising) and gt is None for
    unpaired sets. Names are record names (the lq file's stem; LOL-Blur
    ``<video>_<frame>``, SICE ``<scene>_<exposure>``).

    Raises:
      ManualDirError: a folder or file is missing (one line).
      ValueError: unknown split; files without a partner, two files with
        one key, a folder that differs from a shipped split list (the
        message names the files).
    """
    split = self.resolve_split(split)
    root = self.check(data_dir, split)
    if self.builder:
      examples = _layout_builder(self.builder).split_examples(root, split)
    else:
      examples = base.folder_split_examples(
          root, self.splits[split], self.tree, f'{self.name} split {split!r}')
    if self.kind == 'clean':
      return [(e.name, e.gt, e.gt) for e in examples]
    return [(e.name, e.lq, e.gt) for e in examples]

  def folder_source(self, data_dir: str | os.PathLike[str], split: str, *,
                    validate: bool = True,
                    gt_from_lq: bool = False) -> FileSource:
    """``split`` as a random-access grain source (see :class:`FileSource`).

    Args:
      data_dir: the unpacked download, laid out as :attr:`tree`.
      split: a split name, or ``'test'`` for the eval split.
      validate: read every pair's image header now and check sizes.
      gt_from_lq: unpaired sets only: copy ``lq`` into ``gt``.
    """
    split = self.resolve_split(split)
    files = self.paired_files(data_dir, split)
    spec = self.splits[split].folders()
    dirs = {r: _existing(os.fspath(data_dir), rel) for r, rel in spec.items()}
    return FileSource(files, kind=self.kind, label=f'{self.name}/{split}',
                      lq_dir=dirs.get('lq', dirs.get('gt')),
                      gt_dir=dirs.get('gt'), validate=validate,
                      gt_from_lq=gt_from_lq)


def _existing(root: str, rel: str | tuple[str, ...]) -> str:
  alternatives = (rel,) if isinstance(rel, str) else rel
  for a in alternatives:
    if os.path.isdir(os.path.join(root, a)):
      return os.path.join(root, a)
  return os.path.join(root, alternatives[0])


def _from_builder(name: str, builder_name: str | None = None,
                  description: str = '') -> Layout:
  """The layout of a builder (``builder_name``) under the name ``name``."""
  b = _layout_builder(builder_name or name)
  specs = b.split_specs()
  eval_split = 'test' if 'test' in specs else next(
      s for s in specs if s != 'train')
  noise = b.EXTRA_METADATA.get('noise', {})
  return Layout(
      name=name, splits=specs, tree=b.expected_tree(), kind=b.KIND,
      train_split='train' if 'train' in specs else None,
      eval_split=eval_split, noise_sigma=float(noise.get('sigma', 0.0)),
      builder=builder_name or name,
      files={s: b.split_files(s) for s in specs if b.split_files(s)},
      description=description or (type(b).__doc__ or '').strip().split(
          '\n')[0])


# -- Layouts without a builder (read from their folders only). ---------------

_DEMO_TREE = """\
demo_data/                  <- data_dir (restorect_jax.data.demo_data builds it)
  train/low/<name>.png      degraded inputs
  train/high/<name>.png     clean targets, same names
  test/low/<name>.png
  test/high/<name>.png"""

_DEMO_DENOISE_TREE = """\
demo_data/                  <- data_dir (restorect_jax.data.demo_data builds it)
  train/high/<name>.png     clean images; the noisy input is synthesised,
                            lq = gt + (25/255)·N(0, 1)
  test/high/<name>.png
  (train/low, test/low are not read)"""

_RESIDE6K_TREE = """\
RESIDE-6K/                  <- data_dir
  train/hazy/*              6000 hazy inputs (ITS + OTS)
  train/GT/*                clean targets, same names
  test/hazy/*               1000 hazy inputs
  test/GT/*                 same names"""

_GOPRO_TREE = """\
Datasets/                   <- data_dir (Restormer's Motion_Deblurring layout)
  train/GoPro/input_crops/*.png    blurred crops (Restormer's
  train/GoPro/target_crops/*.png   generate_patches_gopro.py), same names
  test/GoPro/input/*.png           1111 blurred test frames
  test/GoPro/target/*.png          sharp frames, same names
  (without crops, train/GoPro/input and train/GoPro/target are read)"""

_DIV2K_TREE = """\
DIV2K/                               <- data_dir
  DIV2K_train_HR/0001.png ...        800 HR targets
  DIV2K_train_LR_unknown/X4/0001x4.png ...   LR inputs, upsampled to the
                                             HR size first (no upsampler)
  DIV2K_valid_HR/0801.png ...        100 HR (or DIV2K_val_HR)
  DIV2K_valid_LR_unknown/X4/0801x4.png ...   (or DIV2K_val_LR_unknown/X4)"""

_FOLDER_LAYOUTS = (
    Layout(
        name='demo', tree=_DEMO_TREE,
        splits={s: base.FolderSplit(f'{s}/low', f'{s}/high')
                for s in ('train', 'test')},
        description='The bundled low-light demo set (not a benchmark).'),
    Layout(
        name='demo_denoise', tree=_DEMO_DENOISE_TREE, kind='clean',
        noise_sigma=irflow_sets.NOISE_SIGMA,
        splits={s: base.FolderSplit(None, f'{s}/high', key='same_file')
                for s in ('train', 'test')},
        description='The demo set\'s clean images, denoising at σ 25/255 '
        '(IR-Flow task "demo").'),
    Layout(
        name='dehaze', tree=_RESIDE6K_TREE,
        splits={s: base.FolderSplit(f'{s}/hazy', f'{s}/GT')
                for s in ('train', 'test')},
        description='RESIDE-6K dehazing (IR-Flow Dehazing config).'),
    Layout(
        name='deblur', tree=_GOPRO_TREE,
        splits={
            'train': base.FolderSplit(
                ('train/GoPro/input_crops', 'train/GoPro/input'),
                ('train/GoPro/target_crops', 'train/GoPro/target')),
            'test': base.FolderSplit('test/GoPro/input', 'test/GoPro/target'),
        },
        description='GoPro motion deblurring (IR-Flow Motion_Deblurring '
        'config).'),
    Layout(
        name='sr', tree=_DIV2K_TREE,
        splits={
            'train': base.FolderSplit('DIV2K_train_LR_unknown/X4',
                                      'DIV2K_train_HR', key='x4_suffix'),
            'test': base.FolderSplit(
                ('DIV2K_valid_LR_unknown/X4', 'DIV2K_val_LR_unknown/X4'),
                ('DIV2K_valid_HR', 'DIV2K_val_HR'), key='x4_suffix'),
        },
        description='DIV2K ×4 (unknown degradation) super-resolution; LR '
        'pre-upsampled to HR size (IR-Flow SR config).'),
)

# IR-Flow task names that are not builder names → the builder they read.
_ALIASES = {'derain': 'rain100l'}


@functools.lru_cache(maxsize=None)
def _fixed_layouts() -> dict[str, Layout]:
  out = {layout.name: layout for layout in _FOLDER_LAYOUTS}
  for name in BUILDERS:
    out[name] = _from_builder(name)
  for name, builder_name in _ALIASES.items():
    out[name] = _from_builder(name, builder_name)
  return out


def names() -> list[str]:
  """Every name :func:`layout` accepts (builder configs as ``name/config``)."""
  out = set(_fixed_layouts())
  for name, cls in BUILDERS.items():
    out.update(f'{name}/{c.name}' for c in (cls.BUILDER_CONFIGS or []))
  return sorted(out)


@functools.lru_cache(maxsize=None)
def layout(name: str) -> Layout:
  """The :class:`Layout` of a dataset name.

  Raises:
    ValueError: an unknown name (one line listing the known ones).
  """
  fixed = _fixed_layouts()
  if name in fixed:
    return fixed[name]
  builder_name, _, config = name.partition('/')
  if config and builder_name in BUILDERS:
    try:
      parse_builder_name(name)
    except ValueError:
      pass
    else:
      return _from_builder(name)
  hint = (' (your own folders: datasets.pair_dirs(lq_dir, gt_dir))'
          if name == 'folder' else '')
  raise ValueError(f'Unknown dataset {name!r}{hint}; known: '
                   f'{", ".join(names())}.')


def paired_files(name: str, data_dir: str | os.PathLike[str],
                 split: str) -> Files:
  """``layout(name).paired_files(data_dir, split)``."""
  return layout(name).paired_files(data_dir, split)


def folder_source(name: str, data_dir: str | os.PathLike[str], split: str,
                  *, validate: bool = True,
                  gt_from_lq: bool = False) -> FileSource:
  """``layout(name).folder_source(data_dir, split, ...)``."""
  return layout(name).folder_source(data_dir, split, validate=validate,
                                    gt_from_lq=gt_from_lq)


def pair_dirs(lq_dir: str | os.PathLike[str],
              gt_dir: str | os.PathLike[str] | None = None, *,
              pairing: str = 'stem', validate: bool = True) -> FileSource:
  """Your own folders (config ``dataset=folder``, ``evaluate --lq_dir``).

  Args:
    lq_dir: folder of inputs.
    gt_dir: folder of ground truths; None or ``''``: unpaired (no gt);
      the same folder as ``lq_dir``: a clean set (lq is the gt file).
    pairing: a file-name rule of :data:`folders.KEYS` (``'stem'``;
      ``'underscore_prefix'`` for ``N_rain`` ↔ ``N_clean``).
    validate: read every pair's image header now and check sizes.

  Raises:
    FileNotFoundError: a folder is missing.
    ValueError: unknown rule, empty folder, unmatched or ambiguous names.
  """
  lq_dir = os.fspath(lq_dir)
  gt_dir = os.fspath(gt_dir) if gt_dir else ''
  key = folders.pairing_key(pairing)
  if not gt_dir:
    files = [(e.name, e.lq, None)
             for e in folders.single_folder(lq_dir, 'lq')]
    kind = 'unpaired'
  elif os.path.abspath(gt_dir) == os.path.abspath(lq_dir):
    files = [(e.name, e.gt, e.gt)
             for e in folders.single_folder(gt_dir, 'gt')]
    kind = 'clean'
  else:
    files = [(e.name, e.lq, e.gt)
             for e in folders.pair_folders(lq_dir, gt_dir, key=key)]
    kind = 'paired'
  return FileSource(files, kind=kind, label=lq_dir, lq_dir=lq_dir,
                    gt_dir=gt_dir or None, validate=validate)


# ----------------------------------------------------------------------------
# Source.
# ----------------------------------------------------------------------------


class FileSource(input_pipeline.PairedFolderSource):
  """Random-access source over a list of ``(name, lq, gt)`` files.

  ``input_pipeline.PairedFolderSource`` with the pairing done by the
  registry: the same ``names`` / ``lq_paths`` / ``gt_paths`` attributes and
  the same reads and size checks for paired sets. Records:

  * ``'paired'``: ``{'lq', 'gt', 'name'}``, uint8 (H, W, 3);
  * ``'clean'``: ``lq`` is the same array as ``gt`` (the noise is added by
    the caller, ``Layout.noise_sigma``);
  * ``'unpaired'``: ``{'lq', 'name'}`` (``gt_paths`` are None), or with
    ``gt_from_lq`` a copy of ``lq`` as ``gt``.

  Attributes:
    kind: ``'paired'``, ``'clean'`` or ``'unpaired'``.
    has_gt: whether records carry ``'gt'``.
    label: ``'name/split'`` (or the folder) for messages.
  """

  def __init__(self, files: Files, *, kind: str = 'paired', label: str = '',
               lq_dir: str | None = None, gt_dir: str | None = None,
               validate: bool = True, gt_from_lq: bool = False):
    # The folders are already paired: the parent's listing is not run.
    # pylint: disable=super-init-not-called
    if kind not in KINDS:
      raise ValueError(f'kind {kind!r} not in {KINDS}.')
    if not files:
      raise ValueError(f'{label}: no images.')
    self.kind, self.label = kind, label
    self.lq_dir, self.gt_dir = lq_dir, gt_dir
    self.prefix_match = False
    self.names = [n for n, _, _ in files]
    self.keys = list(self.names)
    self.lq_paths = [lq for _, lq, _ in files]
    self.gt_paths = [gt for _, _, gt in files]
    self.gt_from_lq = bool(gt_from_lq) and kind == 'unpaired'
    self.has_gt = kind != 'unpaired' or self.gt_from_lq
    if validate and kind == 'paired':
      for lq_path, gt_path in zip(self.lq_paths, self.gt_paths):
        self._check_sizes(lq_path, image_io.image_size(lq_path), gt_path,
                          image_io.image_size(gt_path))

  def __getitem__(self, index: int) -> dict[str, Any]:
    if self.kind == 'paired':
      return super().__getitem__(index)
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f'Index {index} out of range for {len(self)} images.')
    img = image_io.read_image_uint8(self.lq_paths[index])
    record = {'lq': img, 'name': self.names[index]}
    if self.kind == 'clean':
      record['gt'] = img
    elif self.gt_from_lq:
      record['gt'] = img.copy()
    return record

  def __repr__(self) -> str:
    return (f'FileSource({self.label!r}, kind={self.kind!r}, '
            f'len={len(self)})')
