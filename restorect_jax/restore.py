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
model multiple (as the reference test does; ``--buckets`` pads to shape
buckets instead, so a folder of mixed sizes compiles once per bucket, at
the price of outputs that differ from every other command's near the
borders), restored and cropped back, and written as
``<output>/<name>.png``. Images above ``--max_pixels`` (or any image with
``--tile``) are restored tile by tile with linearly blended overlaps, so a
4K image fits in bounded memory; RestoRect computes its two 256-d priors
once on the whole image and shares them across tiles. ``--seed`` fixes the
RestoRect prior noise per file name (same seed, same output). A file that
fails (unreadable, too small, non-finite output) is reported by name and
skipped; the rest of the folder still completes and the command exits
non-zero at the end. Inputs that would write the same output name (e.g.
``shot.jpg`` and ``shot.png``) are refused before any work starts. Existing
outputs are kept unless ``--overwrite``.

Inputs, output folder and every weight file (``--weights``, ``--decom``, a
run's checkpoint, verified against its digests) are checked before the
first image. A wrong flag or file is one ``error:`` line naming it (exit
status 2 for a wrong flag, 1 otherwise; ``--verbosity=1`` shows the
traceback); hostile weight files (pickles) are refused unopened.
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags
from absl import logging

from restorect_jax import cli_common
from restorect_jax import cli_errors

flags.adopt_module_key_flags(cli_common)

FLAGS = flags.FLAGS
_INPUT = flags.DEFINE_string('input', None,
                             'An image file, a folder or a glob pattern.')
_OUTPUT = flags.DEFINE_string('output', None, 'Output folder (PNG files).')
_STEPS = flags.DEFINE_integer(
    'rf_steps', None, 'Sampling steps (default: the model\'s, 5 RestoRect, '
    '1 IR-Flow).', lower_bound=1)
flags.DEFINE_alias('steps', 'rf_steps')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the RestoRect priors.')
_ENSEMBLE = flags.DEFINE_enum('ensemble', '', ['', 'x8'],
                              'Self-ensemble over the 8 flips/rotations.')
_TILE = flags.DEFINE_integer('tile', 0, 'Tile size (0: automatic).',
                             lower_bound=0)
_OVERLAP = flags.DEFINE_integer('tile_overlap', 32, 'Tile overlap (px).',
                                lower_bound=0)
# 512 x 512 tiles: the default-width Interface needs 2.0 GiB of XLA
# temporaries per tile at this size and 8.2 GiB at 1024 x 1024
# (benchmarks/memory_bench.py), so the default keeps restore under 6 GiB.
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels', 512 * 512,
    'Images with more pixels are tiled automatically (0: never); the tile '
    'side is the largest model multiple whose square fits.',
    lower_bound=0)
_TILE_BATCH = flags.DEFINE_integer('tile_batch', 1, 'Tiles per forward.',
                                   lower_bound=1)
_BUCKETS = flags.DEFINE_boolean(
    'buckets', False, 'Pad to shape buckets (one compile per bucket) instead '
    'of to the next model multiple (the default, equal to every other '
    'command\'s output).')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False,
                                  'Replace existing output files.')


def restore_image(predictor, image, *, name: str, seed: int = 0,
                  steps: int | None = None, tile: int = 0,
                  overlap: int = 32, max_pixels: int = 0,
                  tile_batch: int = 1, ensemble: str = '',
                  buckets: bool = False, progress=None):
  """Restores one (H, W, 3) image in [0, 1]; returns (H, W, 3) in [0, 1].

  Without tiles, ensemble or buckets this is ``predictor.predict``.

  Args:
    predictor: a :class:`restorect_jax.inference.Predictor`.
    image: float32 (H, W, 3).
    name: the image's name (keys the RestoRect prior noise).
    seed: the noise seed.
    steps: sampling steps (the predictor's default when None).
    tile: tile size (0: only when the image exceeds ``max_pixels``).
    overlap: tile overlap in pixels.
    max_pixels: automatic-tiling budget (0: never tile automatically).
    tile_batch: tiles per forward pass.
    ensemble: ``''`` or ``'x8'``.
    buckets: pad whole images to a shape bucket rather than the multiple.
    progress: called as ``progress(done_tiles, total_tiles)`` when tiling.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from restorect_jax.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  from restorect_jax.inference import tiling  # pylint: disable=g-import-not-at-top
  m = predictor.multiple
  h, w = image.shape[:2]
  if not tile and max_pixels and tiling.needs_tiling(h, w, max_pixels):
    tile = tiling.auto_tile(h, w, max_pixels=max_pixels, overlap=overlap,
                            multiple=m)
  if not (tile or ensemble or buckets):
    return predictor.predict(image, name=name, steps=steps, seed=seed)
  context = predictor.prepare(image, steps=steps, name=name, seed=seed)

  def plain(batch, valid=None):
    return predictor.run(batch, context, steps=steps, valid=valid)

  def maybe_ensemble(fn):
    if ensemble == 'x8':
      return lambda batch: tiling.ensemble_x8(fn, batch)
    return fn

  # A predictor that refills its padding at every step is told where the
  # image ends; ensembled tiles (padding rotated away from bottom/right)
  # are treated as all image.
  refill = predictor.refills_padding
  if tile:
    # Tiles already have sides that are multiples of m (also rotated).
    out = tiling.restore_tiled(maybe_ensemble(plain), image, tile=tile,
                               overlap=overlap, multiple=m, batch=tile_batch,
                               progress=progress,
                               pass_valid=refill and not ensemble)
  else:
    # Each (transformed) copy is padded bottom/right, as the reference does.
    padded = tiling.with_padding(plain, multiple=m, bucket=buckets,
                                 pass_valid=refill)
    out = maybe_ensemble(padded)(image[None])[0]
  out = np.asarray(out)
  predictor_lib.check_finite(out, name, predictor.info)
  return np.clip(out, 0.0, 1.0)


def output_names(files: list[str], out_dir: str) -> dict[str, str]:
  """``{input: output path}``; raises ValueError listing inputs that would
  write the same output (e.g. ``shot.jpg`` and ``shot.png``)."""
  outs: dict[str, list[str]] = {}
  for path in files:
    stem = os.path.splitext(os.path.basename(path))[0]
    outs.setdefault(os.path.join(out_dir, stem + '.png'), []).append(path)
  clashes = {o: ins for o, ins in outs.items() if len(ins) > 1}
  if clashes:
    lines = '; '.join(f'{", ".join(ins)} -> {o}'
                      for o, ins in sorted(clashes.items()))
    raise ValueError(f'Inputs that would write the same output: {lines}. '
                     'Rename them or restore them into separate folders.')
  return {ins[0]: o for o, ins in outs.items()}


def main(argv):
  cli_common.start(argv)
  from restorect_jax.data import image_io  # pylint: disable=g-import-not-at-top
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  # Everything that can be checked before the first image is: inputs,
  # output names and folder, every weight file.
  files = image_io.list_inputs(_INPUT.value)
  targets = output_names(files, _OUTPUT.value)
  cli_common.output_dir(_OUTPUT.value, 'output')
  predictor = cli_common.load_predictor()
  if predictor.needs_gt:
    raise ValueError(f'{_FLAGS_SOURCE()} is an S1 teacher run: the teacher '
                     'needs the ground truth; restore with an S2 (student) '
                     'or IR-Flow run.')
  steps = predictor.steps_or_default(_STEPS.value)
  logging.info('Predictor: %s', loading.describe(predictor))
  failed, skipped, t0 = [], [], time.time()
  for i, path in enumerate(files):
    out_path = targets[path]
    tag = f'[{i + 1}/{len(files)}] {path}'
    if os.path.exists(out_path) and not _OVERWRITE.value:
      skipped.append(out_path)
      print(f'{tag}: {out_path} exists, kept (--overwrite replaces it)',
            file=sys.stderr)
      continue

    def progress(done, total, tag=tag):
      print(f'\r{tag}: tile {done}/{total}', end='', file=sys.stderr)

    try:
      image = image_io.read_image(path)
      out = restore_image(
          predictor, image, name=path, seed=_SEED.value, steps=steps,
          tile=_TILE.value, overlap=_OVERLAP.value,
          max_pixels=_MAX_PIXELS.value, tile_batch=_TILE_BATCH.value,
          ensemble=_ENSEMBLE.value, buckets=_BUCKETS.value,
          progress=progress)
      image_io.write_png(out, out_path, overwrite=_OVERWRITE.value)
    except Exception as e:  # pylint: disable=broad-except
      # One bad image (unreadable, too small, non-finite, unwritable) never
      # stops the folder; every failure is listed at the end.
      why = (str(e).strip().splitlines() or [''])[0]
      failed.append((path, f'{type(e).__name__}: {why}'))
      print(f'{tag}: FAILED: {failed[-1][1]}', file=sys.stderr)
      continue
    print(f'\r{tag} -> {out_path} ({image.shape[1]}x{image.shape[0]}, '
          f'{time.time() - t0:.1f} s)', file=sys.stderr)
  done = len(files) - len(failed) - len(skipped)
  print(f'Restored {done} of {len(files)} images into {_OUTPUT.value} '
        f'({predictor.method}, {steps} steps); {len(skipped)} kept, '
        f'{len(failed)} failed.')
  if failed:
    for path, err in failed:
      print(f'FAILED {path}: {err}', file=sys.stderr)
    sys.exit(1)


def _FLAGS_SOURCE() -> str:  # pylint: disable=invalid-name
  return cli_common.CHECKPOINT.value or cli_common.WEIGHTS.value


if __name__ == '__main__':
  flags.mark_flags_as_required(['input', 'output'])
  cli_errors.run(main)
