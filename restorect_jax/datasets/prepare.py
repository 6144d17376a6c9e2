r"""Prepares a dataset from its unpacked public download (never downloads).

Usage::

  python -m restorect_jax.datasets.prepare --dataset=lol_v1 \
      --manual_dir=/data/LOLdataset --data_dir=/data/tfds
  python -m restorect_jax.datasets.prepare --dataset=uieb/t90 \
      --manual_dir=/data/UIEB --data_dir=/data/tfds
  python -m restorect_jax.datasets.prepare --dataset=sice --show_tree
  python -m restorect_jax.datasets.prepare --dataset=dehaze --show_tree

``--dataset`` takes every registry name (``datasets.names()``); names
without a builder (``dehaze``, ``deblur``, ``sr``, ``demo``,
``demo_denoise``) only print their tree, and ``derain`` prepares
``rain100l``.

Prints each split's record count and name-list SHA-256 (record them with
your results), the files converted to 8-bit RGB, and warns about known
train/test overlaps with datasets already prepared in ``--data_dir``.
"""

from __future__ import annotations

from absl import app
from absl import flags

_DATASET = flags.DEFINE_string(
    'dataset', None, "Dataset name, optionally with a config: 'lol_v1', "
    "'uieb/t90', 'unpaired_llie/dicm', 'derain', ...")
_MANUAL_DIR = flags.DEFINE_string(
    'manual_dir', None, 'The unpacked download, laid out as --show_tree '
    'prints.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Output TFDS data dir (default ~/tensorflow_datasets).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Rebuild an already prepared dataset.')
_SHOW_TREE = flags.DEFINE_bool(
    'show_tree', False, 'Print the expected folder tree and exit.')


def summary(builder) -> str:
  """Human-readable splits / counts / hashes of a prepared builder."""
  md = builder.info.metadata
  lines = [f'{builder.name} ({md.get("config") or "-"}) in {builder.data_dir}',
           f'  split rule: {md.get("split_rule")}']
  for split, info in md['splits'].items():
    lines.append(f'  {split}: {info["count"]} records, names sha256 '
                 f'{info["names_sha256"]}'
                 + (f' (= {info["names_file"]})' if info.get('names_file')
                    else ''))
    if info.get('conversions'):
      lines.append(f'    {len(info["conversions"])} files converted to '
                   '8-bit RGB (see metadata.json "conversions")')
  if md.get('extra'):
    lines.append(f'  extra: {md["extra"]}')
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
  if not _DATASET.value:
    raise app.UsageError('--dataset is required; one of '
                         f'{", ".join(datasets.names())}.')
  try:
    layout = datasets.layout(_DATASET.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if _SHOW_TREE.value:
    print(layout.tree)
    return
  if not layout.builder:
    raise app.UsageError(
        f'{layout.name} has no TFDS builder: configs and evaluate read it '
        'from its folders (datasets.folder_source); --show_tree prints them.')
  if not _MANUAL_DIR.value:
    raise app.UsageError('--manual_dir is required.')
  b = datasets.prepare(layout.builder, _MANUAL_DIR.value, _DATA_DIR.value,
                       overwrite=_OVERWRITE.value)
  print(summary(b))


if __name__ == '__main__':
  app.run(main)
