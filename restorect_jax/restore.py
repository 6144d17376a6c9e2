r"""``python -m restorect_jax.restore``: restore images, no ground truth needed.

Examples::

  # A trained run (S2 student or IR-Flow), a folder in, PNGs out:
  python -m restorect_jax.restore --checkpoint runs/demo/s2 \
    --input photos/ --output restored/
  # Converted / PyTorch weights:
  python -m restorect_jax.restore --model irflow --weights irflow.pth \
    --steps 4 --input 'rain/*.png' --output derained/
  python -m restorect_jax.restore --model interface --weights s2.pth \
    --decom init_low.pth --input dark.jpg --output out/ --ensemble x8

Each image is read with its EXIF orientation applied, reflect-padded to the
model multiple (by default to a shape bucket, so a folder of mixed sizes
compiles once per bucket), restored and cropped back, and written as
``<output>/<name>.png``. Images above ``--max_pixels`` (or any image with
``--tile``) are restored tile by tile with linearly blended overlaps, so a
4K image fits in bounded memory; RestoRect computes its two 256-d priors
once on the whole image and shares them across tiles. ``--seed`` fixes the
RestoRect prior noise per file name (same seed, same output). A file that
cannot be read is reported and skipped; the rest of the folder still
completes and the command exits non-zero at the end. Existing outputs are
kept unless ``--overwrite``.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

from restorect_jax import cli_common

FLAGS = flags.FLAGS
_INPUT = flags.DEFINE_string('input', None,
                             'An image file, a folder or a glob pattern.')
_OUTPUT = flags.DEFINE_string('output', None, 'Output folder (PNG files).')
_STEPS = flags.DEFINE_integer(
    'rf_steps', None, 'Sampling steps (default: 5 RestoRect, 1 IR-Flow).')
flags.DEFINE_alias('steps', 'rf_steps')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the RestoRect priors.')
_ENSEMBLE = flags.DEFINE_enum('ensemble', '', ['', 'x8'],
                              'Self-ensemble over the 8 flips/rotations.')
_TILE = flags.DEFINE_integer('tile', 0, 'Tile size (0: automatic).')
_OVERLAP = flags.DEFINE_integer('tile_overlap', 32, 'Tile overlap (px).')
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels', 1024 * 1024,
    'Images with more pixels are tiled automatically (0: never).')
_TILE_BATCH = flags.DEFINE_integer('tile_batch', 1, 'Tiles per forward.')
_BUCKETS = flags.DEFINE_boolean(
    'buckets', True, 'Pad to shape buckets (one compile per bucket) instead '
    'of to the next model multiple.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False,
                                  'Replace existing output files.')


def restore_image(predictor, image, *, steps: int, rng, tile: int = 0,
                  overlap: int = 32, max_pixels: int = 0,
                  tile_batch: int = 1, ensemble: str = '',
                  buckets: bool = True):
  """Restores one (H, W, 3) image in [0, 1]; returns (H, W, 3) in [0, 1].

  Args:
    predictor: a :class:`restorect_jax.predictors.Predictor`.
    image: float32 (H, W, 3).
    steps: sampling steps.
    rng: the image's key (RestoRect priors).
    tile: tile size (0: only when the image exceeds ``max_pixels``).
    overlap: tile overlap in pixels.
    max_pixels: automatic-tiling budget (0: never tile automatically).
    tile_batch: tiles per forward pass.
    ensemble: ``''`` or ``'x8'``.
    buckets: pad whole images to a shape bucket rather than the multiple.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from restorect_jax import tiling  # pylint: disable=g-import-not-at-top
  m = predictor.multiple
  context = predictor.prepare(image, steps=steps, rng=rng)

  def plain(batch):
    return predictor.run(batch, context, steps=steps)

  def maybe_ensemble(fn):
    if ensemble == 'x8':
      return lambda batch: tiling.ensemble_x8(fn, batch)
    return fn

  h, w = image.shape[:2]
  if not tile and max_pixels and tiling.needs_tiling(h, w, max_pixels):
    tile = tiling.auto_tile(h, w, max_pixels=max_pixels, overlap=overlap,
                            multiple=m)
  if tile:
    # Tiles already have sides that are multiples of m (also rotated).
    out = tiling.restore_tiled(maybe_ensemble(plain), image, tile=tile,
                               overlap=overlap, multiple=m, batch=tile_batch)
  else:
    # Each (transformed) copy is padded bottom/right, as the reference does.
    padded = tiling.with_padding(plain, multiple=m, bucket=buckets)
    out = maybe_ensemble(padded)(image[None])[0]
  return np.clip(out, 0.0, 1.0)


def main(argv):
  cli_common.start(argv)
  from restorect_jax import image_io  # pylint: disable=g-import-not-at-top
  from restorect_jax import predictors  # pylint: disable=g-import-not-at-top
  try:
    files = image_io.list_inputs(_INPUT.value)
    predictor = cli_common.load_predictor()
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'error: {e}')
  steps = _STEPS.value or cli_common.default_steps(predictor.kind)
  logging.info('Predictor: %s', predictors.describe(predictor))
  os.makedirs(_OUTPUT.value, exist_ok=True)
  failed, skipped, t0 = [], [], time.time()
  for i, path in enumerate(files):
    stem = os.path.splitext(os.path.basename(path))[0]
    out_path = os.path.join(_OUTPUT.value, stem + '.png')
    if os.path.exists(out_path) and not _OVERWRITE.value:
      skipped.append(out_path)
      print(f'[{i + 1}/{len(files)}] {path}: {out_path} exists, kept '
            '(--overwrite replaces it)', file=sys.stderr)
      continue
    try:
      image = image_io.read_image(path)
    except (ValueError, OSError) as e:
      failed.append((path, str(e)))
      print(f'[{i + 1}/{len(files)}] {path}: FAILED: {e}', file=sys.stderr)
      continue
    out = restore_image(
        predictor, image, steps=steps,
        rng=predictors.image_rng(_SEED.value, path), tile=_TILE.value,
        overlap=_OVERLAP.value, max_pixels=_MAX_PIXELS.value,
        tile_batch=_TILE_BATCH.value, ensemble=_ENSEMBLE.value,
        buckets=_BUCKETS.value)
    image_io.write_png(out, out_path, overwrite=_OVERWRITE.value)
    print(f'[{i + 1}/{len(files)}] {path} -> {out_path} '
          f'({image.shape[1]}x{image.shape[0]}, {time.time() - t0:.1f} s)',
          file=sys.stderr)
  done = len(files) - len(failed) - len(skipped)
  print(f'Restored {done} of {len(files)} images into {_OUTPUT.value} '
        f'({predictor.kind}, {steps} steps); {len(skipped)} kept, '
        f'{len(failed)} failed.')
  if failed:
    for path, err in failed:
      print(f'FAILED {path}: {err}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['input', 'output'])
  app.run(main)
