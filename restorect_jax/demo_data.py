"""A small bundled paired low-light demo set built from scikit-image photos.

Nothing is downloaded: the photos ship inside the scikit-image wheel
(``skimage.data``), and the low-light inputs are synthesised from them, so the
set can be rebuilt anywhere in a few seconds and used for smoke training runs,
tests and the README demo. It is *not* a benchmark: the degradation is a simple
camera model, not real low-light capture.

Layout written by :func:`make_demo_pairs`::

  out_dir/
    train/low/<name>.png   train/high/<name>.png   (matched file names)
    test/low/<name>.png    test/high/<name>.png
    manifest.json          (parameters, per-pair draws, SHA-256 per file)

Ground truth (``high``): the photo as RGB uint8. Train pairs are
``train_crops_per_image`` random ``size``×``size`` crops from each train photo
after an area resize of its short side to ``2 * size``; test pairs are whole
held-out natural photos (``coffee``, ``chelsea``), centre-cropped to a 3:4
aspect and area-resized to ``(1.5 * size, 2 * size)`` (192×256 for the default
``size=128``), both rounded down to multiples of 8.

Low-light input (``low``), :func:`degrade_low_light`: linearise with gamma 2.2,
scale the exposure by a factor drawn from [0.05, 0.25], add Poisson-Gaussian
noise (Poisson shot noise with variance ``shot_gain * signal``, ``shot_gain``
drawn from [5e-4, 2e-3]; Gaussian read noise with sigma drawn from
[0.005, 0.02]), clip to [0, 1], re-apply the gamma and quantise to uint8 by
rounding. Every pair's random draws come from
``np.random.default_rng([seed, crc32(name), 1])``, so the whole set is a pure
function of (photo, seed, size, train_crops_per_image).

Build it from the command line::

  python -m restorect_jax.demo_data --out /tmp/restorect_demo

The default set (seed 0, size 128) is 24 train pairs (128×128) and 2 test pairs
(192×256), about 2.0 MB, and builds in about 2 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from PIL import Image

FORMAT = 'restorect_jax.demo_data/1'
MANIFEST = 'manifest.json'

# Photos (names use no '_' so that prefix matching on the set stays unique).
TRAIN_PHOTOS = (
    'astronaut',
    'rocket',
    'motorcycle-left',
    'motorcycle-right',
    'retina',
    'immunohistochemistry',
)
TEST_PHOTOS = ('coffee', 'chelsea')

GAMMA = 2.2
EXPOSURE_RANGE = (0.05, 0.25)
READ_SIGMA_RANGE = (0.005, 0.02)
SHOT_GAIN_RANGE = (5e-4, 2e-3)
# A train crop whose mean (0..255) is below this is redrawn (retina corners).
_MIN_CROP_MEAN = 30.0
_MAX_CROP_TRIES = 32


def _load_photo(name: str) -> np.ndarray:
  """Returns a bundled scikit-image photo as RGB uint8 (H, W, 3)."""
  from skimage import data  # pylint: disable=g-import-not-at-top

  if name == 'motorcycle-left':
    img = data.stereo_motorcycle()[0]
  elif name == 'motorcycle-right':
    img = data.stereo_motorcycle()[1]
  elif name in TRAIN_PHOTOS + TEST_PHOTOS:
    img = getattr(data, name)()
  else:
    raise ValueError(f'Unknown demo photo {name!r}.')
  img = np.asarray(img)
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(
        f'skimage photo {name!r} is not RGB uint8: {img.dtype} {img.shape}.'
    )
  return img


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) resampling matrix: box (area) when shrinking, else linear."""
  if n_out <= n_in:
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    hi = lo + scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / scale
  pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  pos = np.clip(pos, 0, n_in - 1)
  left = np.floor(pos).astype(int)
  right = np.minimum(left + 1, n_in - 1)
  frac = pos - left
  w = np.zeros((n_out, n_in))
  w[np.arange(n_out), left] += 1.0 - frac
  w[np.arange(n_out), right] += frac
  return w


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
  """Deterministic separable area/linear resize of a uint8 image."""
  wy = _resize_weights(img.shape[0], height)
  wx = _resize_weights(img.shape[1], width)
  rows = np.tensordot(wy, img.astype(np.float64), axes=(1, 0))  # (h', W, C)
  out = np.tensordot(wx, rows, axes=(1, 1)).transpose(1, 0, 2)  # (h', w', C)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _round8(x: float) -> int:
  return max(8, int(x) // 8 * 8)


def _test_shape(size: int) -> tuple[int, int]:
  return _round8(1.5 * size), _round8(2 * size)


def _stable_id(name: str) -> int:
  return zlib.crc32(name.encode('utf-8'))


def _degrade(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
  """Low-light synthesis; returns the image and the drawn parameters."""
  img = np.asarray(img_uint8)
  if img.dtype != np.uint8:
    raise ValueError(f'Expected a uint8 image, got {img.dtype}.')
  exposure = float(rng.uniform(*EXPOSURE_RANGE))
  read_sigma = float(rng.uniform(*READ_SIGMA_RANGE))
  shot_gain = float(rng.uniform(*SHOT_GAIN_RANGE))
  linear = (img.astype(np.float64) / 255.0) ** GAMMA
  signal = linear * exposure
  # Poisson shot noise in "photon" units (variance = shot_gain * signal).
  noisy = rng.poisson(signal / shot_gain).astype(np.float64) * shot_gain
  noisy += rng.normal(0.0, read_sigma, size=img.shape)
  display = np.clip(noisy, 0.0, 1.0) ** (1.0 / GAMMA)
  lq = np.clip(np.round(display * 255.0), 0, 255).astype(np.uint8)
  params = {
      'exposure': exposure,
      'read_sigma': read_sigma,
      'shot_gain': shot_gain,
  }
  return lq, params


def degrade_low_light(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
  """Synthesises a noisy low-light version of a well-exposed uint8 image.

  Linearises with gamma 2.2, multiplies by an exposure factor drawn from
  ``EXPOSURE_RANGE`` ([0.05, 0.25]), adds Poisson shot noise (variance
  ``shot_gain * signal``, ``shot_gain`` drawn from ``SHOT_GAIN_RANGE``) and
  Gaussian read noise (sigma drawn from ``READ_SIGMA_RANGE``, [0.005, 0.02]),
  clips to [0, 1], re-applies the gamma and rounds to uint8. The three factors
  are drawn first, in that order, then the noise; the result is a pure
  function of the image and the generator's state.

  Args:
    img_uint8: uint8 image (H, W, C), usually RGB.
    rng: generator supplying every random draw.

  Returns:
    The degraded image, uint8, same shape.
  """
  return _degrade(img_uint8, rng)[0]


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def _params(seed: int, size: int, train_crops_per_image: int) -> dict[str, Any]:
  import skimage  # pylint: disable=g-import-not-at-top

  return {
      'seed': seed,
      'size': size,
      'train_crops_per_image': train_crops_per_image,
      'test_shape': list(_test_shape(size)),
      'train_photos': list(TRAIN_PHOTOS),
      'test_photos': list(TEST_PHOTOS),
      'photo_source': f'scikit-image {skimage.__version__} skimage.data',
      'degradation': {
          'gamma': GAMMA,
          'exposure_range': list(EXPOSURE_RANGE),
          'read_sigma_range': list(READ_SIGMA_RANGE),
          'shot_gain_range': list(SHOT_GAIN_RANGE),
          'noise': 'poisson(signal / shot_gain) * shot_gain + '
          'normal(0, read_sigma), in linear light',
          'quantisation': 'clip [0, 1], ** (1 / gamma), round to uint8',
          'rng': 'np.random.default_rng([seed, crc32(name), 1])',
      },
  }


def _train_crops(
    photo: np.ndarray, name: str, *, seed: int, size: int, count: int
) -> list[tuple[np.ndarray, list[int]]]:
  """``count`` random size×size crops (with their boxes) of a resized photo."""
  h, w = photo.shape[:2]
  short = 2 * size
  if h <= w:
    nh, nw = short, max(size, round(w * short / h))
  else:
    nh, nw = max(size, round(h * short / w)), short
  resized = _resize(photo, nh, nw)
  rng = np.random.default_rng([seed, _stable_id(name), 0])
  crops = []
  for _ in range(count):
    for _ in range(_MAX_CROP_TRIES):
      y = int(rng.integers(0, nh - size + 1))
      x = int(rng.integers(0, nw - size + 1))
      crop = resized[y : y + size, x : x + size]
      if crop.mean() >= _MIN_CROP_MEAN:
        break
    crops.append((np.ascontiguousarray(crop), [y, x, size, size, nh, nw]))
  return crops


def _test_image(photo: np.ndarray, size: int) -> tuple[np.ndarray, list[int]]:
  """Centre crop to the test aspect, then resize to the test shape."""
  th, tw = _test_shape(size)
  h, w = photo.shape[:2]
  if h * tw > w * th:  # Too tall: crop rows.
    ch, cw = round(w * th / tw), w
  else:
    ch, cw = h, round(h * tw / th)
  y, x = (h - ch) // 2, (w - cw) // 2
  crop = photo[y : y + ch, x : x + cw]
  return _resize(crop, th, tw), [y, x, ch, cw, h, w]


def _save_png(path: str, img: np.ndarray) -> None:
  Image.fromarray(img, mode='RGB').save(path, format='PNG')


def _load_manifest(out_dir: str) -> dict[str, Any] | None:
  path = os.path.join(out_dir, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None
  return manifest if isinstance(manifest, dict) else None


def verify_manifest(out_dir: str, manifest: dict[str, Any]) -> list[str]:
  """Returns the files of ``manifest`` that are missing or changed on disk.

  Args:
    out_dir: the demo set's root.
    manifest: a manifest as written by :func:`make_demo_pairs`.

  Returns:
    Relative paths whose SHA-256 differs (empty when the set is intact).
  """
  bad = []
  for rel, digest in sorted(manifest.get('files', {}).items()):
    path = os.path.join(out_dir, rel)
    if not os.path.isfile(path) or _sha256(path) != digest:
      bad.append(rel)
  return bad


def _is_complete(out_dir: str, params: dict[str, Any]) -> dict | None:
  manifest = _load_manifest(out_dir)
  if manifest is None or manifest.get('format') != FORMAT:
    return None
  if manifest.get('params') != json.loads(json.dumps(params)):
    return None
  if not manifest.get('files') or verify_manifest(out_dir, manifest):
    return None
  expected = {
      f'{p["split"]}/{side}/{p["name"]}'
      for p in manifest.get('pairs', [])
      for side in ('low', 'high')
  }
  if expected != set(manifest['files']):
    return None
  return manifest


def _build(staging: str, params: dict[str, Any]) -> dict[str, Any]:
  """Writes the pairs under ``staging``; returns the manifest."""
  seed, size = params['seed'], params['size']
  items = []  # (split, name, photo, gt, box)
  for photo_name in TRAIN_PHOTOS:
    photo = _load_photo(photo_name)
    crops = _train_crops(
        photo,
        photo_name,
        seed=seed,
        size=size,
        count=params['train_crops_per_image'],
    )
    for i, (crop, box) in enumerate(crops):
      name = f'{photo_name}-{i:02d}.png'
      items.append(('train', name, photo_name, crop, box))
  for photo_name in TEST_PHOTOS:
    img, box = _test_image(_load_photo(photo_name), size)
    items.append(('test', f'{photo_name}.png', photo_name, img, box))

  pairs, files = [], {}
  for split, name, photo_name, gt, box in items:
    rng = np.random.default_rng([seed, _stable_id(name), 1])
    lq, draws = _degrade(gt, rng)
    for side, img in (('low', lq), ('high', gt)):
      rel = f'{split}/{side}/{name}'
      path = os.path.join(staging, split, side, name)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      _save_png(path, img)
      files[rel] = _sha256(path)
    pairs.append({
        'split': split,
        'name': name,
        'photo': photo_name,
        # Crop box in the resized photo (train) or the original (test):
        # [y, x, height, width, photo_height, photo_width].
        'box': box,
        'shape': list(gt.shape),
        **draws,
        'gt_mean': float(gt.mean()),
        'lq_mean': float(lq.mean()),
    })
  total = sum(
      os.path.getsize(os.path.join(staging, rel)) for rel in files
  )
  return {
      'format': FORMAT,
      'params': json.loads(json.dumps(params)),
      'num_train': sum(p['split'] == 'train' for p in pairs),
      'num_test': sum(p['split'] == 'test' for p in pairs),
      'total_bytes': total,
      'pairs': pairs,
      'files': files,
  }


def make_demo_pairs(
    out_dir: str,
    *,
    seed: int = 0,
    size: int = 128,
    train_crops_per_image: int = 4,
) -> dict:
  """Builds (or reuses) the paired low-light demo set under ``out_dir``.

  If ``out_dir`` already holds a complete set made with the same parameters
  (manifest present, every file's SHA-256 matching), nothing is written and
  the existing manifest is returned. Otherwise the set is built in a staging
  folder inside ``out_dir`` and moved into place; ``manifest.json`` is written
  last, atomically. An existing ``train/`` or ``test/`` folder is replaced only
  when ``out_dir`` holds a manifest written by this module. Byte-identical
  files need the same scikit-image photos and PNG encoder (Pillow/zlib); the
  manifest records the scikit-image version, and a version change rebuilds.

  Args:
    out_dir: destination folder (created if needed).
    seed: seed for crop positions and the degradation draws (>= 0).
    size: train crop side; the test images are (1.5 size, 2 size), rounded
      down to multiples of 8.
    train_crops_per_image: random crops taken from each train photo.

  Returns:
    The manifest: ``params``, ``pairs`` (split, name, photo, box and the
    per-pair ``exposure``/``read_sigma``/``shot_gain``), ``files`` (relative
    path -> SHA-256), ``num_train``, ``num_test`` and ``total_bytes``.

  Raises:
    ValueError: for bad arguments.
    FileExistsError: if ``out_dir`` has ``train/`` or ``test/`` folders that
      this module did not write.
  """
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}.')
  if size < 8:
    raise ValueError(f'size must be >= 8, got {size}.')
  if train_crops_per_image < 1:
    raise ValueError(
        f'train_crops_per_image must be >= 1, got {train_crops_per_image}.'
    )
  params = _params(seed, size, train_crops_per_image)
  os.makedirs(out_dir, exist_ok=True)
  existing = _is_complete(out_dir, params)
  if existing is not None:
    logging.info('Reusing the demo set in %s.', out_dir)
    return existing

  old = _load_manifest(out_dir)
  owned = old is not None and old.get('format') == FORMAT
  for split in ('train', 'test'):
    if os.path.exists(os.path.join(out_dir, split)) and not owned:
      raise FileExistsError(
          f'{os.path.join(out_dir, split)} exists but {out_dir} has no demo '
          f'{MANIFEST}; refusing to overwrite. Use an empty folder.'
      )

  staging = tempfile.mkdtemp(prefix='.staging-', dir=out_dir)
  try:
    manifest = _build(staging, params)
    # Swap the folders in by renames; an old manifest left in place by a crash
    # no longer matches the files, so the next call rebuilds.
    for split in ('train', 'test'):
      dst = os.path.join(out_dir, split)
      if os.path.exists(dst):
        os.replace(dst, os.path.join(staging, f'old-{split}'))
      os.replace(os.path.join(staging, split), dst)
    tmp = os.path.join(staging, MANIFEST)
    with open(tmp, 'w') as f:
      json.dump(manifest, f, indent=1, sort_keys=True)
      f.write('\n')
    os.replace(tmp, os.path.join(out_dir, MANIFEST))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  logging.info(
      'Wrote the demo set to %s: %d train, %d test pairs, %d bytes.',
      out_dir,
      manifest['num_train'],
      manifest['num_test'],
      manifest['total_bytes'],
  )
  return manifest


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry: ``python -m restorect_jax.demo_data --out DIR``."""
  parser = argparse.ArgumentParser(
      prog='python -m restorect_jax.demo_data',
      description='Build the bundled paired low-light demo set from '
      'scikit-image photos (no download).',
  )
  parser.add_argument('--out', required=True, help='Output folder.')
  parser.add_argument(
      '--seed', type=int, default=0, help='Seed for crops and noise.'
  )
  parser.add_argument(
      '--size', type=int, default=128, help='Train crop side in pixels.'
  )
  parser.add_argument(
      '--train_crops_per_image',
      type=int,
      default=4,
      help='Random crops per train photo.',
  )
  args = parser.parse_args(argv)
  manifest = make_demo_pairs(
      args.out,
      seed=args.seed,
      size=args.size,
      train_crops_per_image=args.train_crops_per_image,
  )
  print(
      f'{args.out}: {manifest["num_train"]} train pairs, '
      f'{manifest["num_test"]} test pairs, {manifest["total_bytes"]} bytes'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
