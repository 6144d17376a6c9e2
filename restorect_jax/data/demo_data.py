"""Small bundled paired demo sets built from scikit-image photos.

Nothing is downloaded: the photos ship inside the scikit-image wheel
(``skimage.data``), and the degraded inputs are synthesised from them, so a
set can be rebuilt anywhere in a few seconds and used for smoke training runs,
tests and the README demo. They are *not* benchmarks: each degradation is a
simple documented model, not real capture.

Layout written by :func:`make_demo_pairs` (the same for every degradation;
``low`` holds the degraded inputs, ``high`` the clean targets)::

  out_dir/
    train/low/<name>.png   train/high/<name>.png   (matched file names)
    test/low/<name>.png    test/high/<name>.png
    manifest.json          (parameters, per-pair draws, SHA-256 per file)

Ground truth (``high``): the photo as RGB uint8. Train pairs are
``train_crops_per_image`` random ``size``×``size`` crops from each train photo
(``train_photos``: all of :data:`TRAIN_PHOTOS` unless a subset is named; a
photo's crops and draws do not depend on the others) after an area resize
of its short side to ``2 * size``; test pairs are whole
held-out natural photos (``coffee``, ``chelsea``), centre-cropped to a 3:4
aspect and area-resized to ``(1.5 * size, 2 * size)`` (192×256 for the default
``size=128``), both rounded down to multiples of 8. The ground truth does not
depend on the degradation.

Degradations (``degradation=``), each a pure function of (image, generator)
that draws its parameters first, then its noise or streaks:

* ``'low_light'`` (default; LLIE), :func:`degrade_low_light`: linearise with
  gamma 2.2, scale the exposure by a factor drawn from [0.05, 0.25], add
  Poisson-Gaussian noise (Poisson shot noise with variance
  ``shot_gain * signal``, ``shot_gain`` drawn from [5e-4, 2e-3]; Gaussian read
  noise with sigma drawn from [0.005, 0.02]), clip to [0, 1], re-apply the
  gamma and quantise to uint8 by rounding.
* ``'underwater'`` (UIE), :func:`degrade_underwater`: the simplified
  underwater image-formation model ``I_c = J_c t_c + A_c (1 - t_c)`` with
  per-channel transmission ``t_c = exp(-beta_c d)``. Attenuation (1/m) is
  wavelength dependent, red > green > blue: ``beta`` drawn from [0.35, 0.6],
  [0.06, 0.14], [0.02, 0.06]. The distance ``d`` (m) ramps linearly across
  the image from ``near`` (drawn from [1, 3]) to ``near + span`` (span from
  [3, 8]), farthest towards a direction drawn within ±45° of the top. The
  veil (backscatter) colour ``A`` is blue-green: R, G, B drawn from
  [0.02, 0.15], [0.45, 0.7], [0.55, 0.85]. In display values, rounded to
  uint8.
* ``'rain'`` (deraining), :func:`degrade_rain`: streak seeds at a density
  drawn from [0.002, 0.006] per pixel with intensities from [0.4, 1], smeared
  by a motion-blur line kernel of length drawn from [8, 20] px at one angle
  drawn from ±25° of vertical (``scipy.ndimage.convolve``, wrapped borders),
  clipped to [0, 1] and screen-blended as white with an opacity drawn from
  [0.5, 0.9]: ``I = 1 - (1 - J)(1 - alpha S)`` (never darker than ``J``).
* ``'noise'`` (denoising), :func:`degrade_noise`: additive white Gaussian
  noise of standard deviation ``noise_sigma`` in 0..255 units (default 25),
  then clip and round to uint8 (IR-Flow's pipeline instead adds unclipped
  float noise on the fly; this set stores a fixed noisy copy).

Every pair's random draws come from
``np.random.default_rng([seed, crc32(name), 1])``, so each set is a pure
function of (photos, seed, size, train_crops_per_image, degradation,
noise_sigma).

Build from the command line::

  python -m restorect_jax.data.demo_data --out /tmp/restorect_demo
  python -m restorect_jax.data.demo_data --out /tmp/uw --degradation underwater

The default set (low light, seed 0, size 128) is 24 train pairs (128×128) and
2 test pairs (192×256), about 2.0 MB, and builds in about 2 s on 2 CPU cores;
the other degradations are the same size and speed. The default set's files
are pinned by SHA-256 in ``tests/demo_data_test.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from absl import logging
from PIL import Image

from restorect_jax.core import hashing
from restorect_jax.ops import quantize, resample

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

DEGRADATIONS = ('low_light', 'underwater', 'rain', 'noise')

# Low light.
GAMMA = 2.2
EXPOSURE_RANGE = (0.05, 0.25)
READ_SIGMA_RANGE = (0.005, 0.02)
SHOT_GAIN_RANGE = (5e-4, 2e-3)
# Underwater: attenuation coefficients (1/m) per channel, red > green > blue.
BETA_RANGES = ((0.35, 0.6), (0.06, 0.14), (0.02, 0.06))
NEAR_RANGE = (1.0, 3.0)  # Distance (m) at the nearest edge.
SPAN_RANGE = (3.0, 8.0)  # Extra distance (m) at the farthest edge.
FAR_DIRECTION_DEG = 45.0  # Farthest edge within ±this of the image top.
AMBIENT_RANGES = ((0.02, 0.15), (0.45, 0.7), (0.55, 0.85))  # Blue-green.
# Rain streaks.
RAIN_DENSITY_RANGE = (0.002, 0.006)  # Streak seeds per pixel.
RAIN_INTENSITY_RANGE = (0.4, 1.0)
RAIN_LENGTH_RANGE = (8, 20)  # Pixels, inclusive.
RAIN_ANGLE_DEG = 25.0  # Streaks within ±this of vertical.
RAIN_ALPHA_RANGE = (0.5, 0.9)
# Gaussian noise, 0..255 units.
NOISE_SIGMA = 25.0
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


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
  """Deterministic separable area/linear resize of a uint8 image, rounded."""
  return quantize.quantize_255(
      resample.area_linear_resize(img, height, width))


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
  lq = _quantise(display)
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


def _check_uint8(img: np.ndarray) -> np.ndarray:
  img = np.asarray(img)
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(
        f'Expected an RGB uint8 (H, W, 3) image, got {img.dtype} {img.shape}.'
    )
  return img


def _quantise(x: np.ndarray) -> np.ndarray:
  """[0, 1] float64 values to uint8: ``clip(round(x * 255), 0, 255)``."""
  return quantize.quantize_255(x * 255.0)


def _distance_ramp(h: int, w: int, angle: float) -> np.ndarray:
  """(h, w) ramp in [0, 1] rising towards ``angle`` (radians, 0 = the top)."""
  v = 0.5 - np.arange(h, dtype=np.float64)[:, None] / max(h - 1, 1)  # Up.
  u = np.arange(w, dtype=np.float64)[None, :] / max(w - 1, 1) - 0.5
  s = u * np.sin(angle) + v * np.cos(angle)
  return (s - s.min()) / max(s.max() - s.min(), 1e-12)


def _underwater(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
  img = _check_uint8(img_uint8)
  beta = np.array([rng.uniform(*r) for r in BETA_RANGES])
  near = float(rng.uniform(*NEAR_RANGE))
  span = float(rng.uniform(*SPAN_RANGE))
  angle = float(rng.uniform(-FAR_DIRECTION_DEG, FAR_DIRECTION_DEG))
  ambient = np.array([rng.uniform(*r) for r in AMBIENT_RANGES])
  h, w = img.shape[:2]
  distance = near + span * _distance_ramp(h, w, np.deg2rad(angle))
  t = np.exp(-beta[None, None, :] * distance[..., None])  # (h, w, 3)
  clean = img.astype(np.float64) / 255.0
  lq = _quantise(clean * t + ambient * (1.0 - t))
  params = {
      'beta': beta.tolist(),
      'near': near,
      'span': span,
      'far_direction_deg': angle,
      'ambient': ambient.tolist(),
  }
  return lq, params


def degrade_underwater(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
  """Synthesises an underwater look: colour attenuation plus a haze veil.

  ``I_c = J_c t_c + A_c (1 - t_c)`` per channel with ``t_c = exp(-beta_c d)``:
  red is attenuated most, blue least (``BETA_RANGES``), the distance ``d``
  ramps from ``near`` to ``near + span`` metres towards a direction within
  ±45° of the top, and ``A`` is a blue-green veil (``AMBIENT_RANGES``). The
  draws, in order: the three ``beta``, ``near``, ``span``, the direction, the
  three ``A``. Computed in float64 on [0, 1] values and rounded to uint8.
  Arguments and result as :func:`degrade_low_light` (RGB input).
  """
  return _underwater(img_uint8, rng)[0]


def _line_kernel(length: int, angle: float) -> np.ndarray:
  """Anti-aliased line of ``length`` px through the centre (0 = vertical).

  Points spaced 1/4 px along the segment are splatted bilinearly; the kernel
  is scaled so a vertical line has value ~1 per pixel.
  """
  size = length + 2 + (length + 1) % 2  # Odd, with a margin.
  c = size // 2
  n = 4 * length + 1
  pos = np.linspace(-(length - 1) / 2, (length - 1) / 2, n)
  ys, xs = c + pos * np.cos(angle), c + pos * np.sin(angle)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  fy, fx = ys - y0, xs - x0
  k = np.zeros((size, size))
  for dy, dx, wgt in (
      (0, 0, (1 - fy) * (1 - fx)),
      (0, 1, (1 - fy) * fx),
      (1, 0, fy * (1 - fx)),
      (1, 1, fy * fx),
  ):
    np.add.at(k, (y0 + dy, x0 + dx), wgt)
  return k * (length / k.sum())


def _rain(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
  from scipy import ndimage  # pylint: disable=g-import-not-at-top

  img = _check_uint8(img_uint8)
  density = float(rng.uniform(*RAIN_DENSITY_RANGE))
  length = int(rng.integers(RAIN_LENGTH_RANGE[0], RAIN_LENGTH_RANGE[1] + 1))
  angle = float(rng.uniform(-RAIN_ANGLE_DEG, RAIN_ANGLE_DEG))
  alpha = float(rng.uniform(*RAIN_ALPHA_RANGE))
  h, w = img.shape[:2]
  seeds = rng.random((h, w)) < density
  intensity = rng.uniform(*RAIN_INTENSITY_RANGE, size=(h, w))
  layer = np.where(seeds, intensity, 0.0)
  streaks = ndimage.convolve(
      layer, _line_kernel(length, np.deg2rad(angle)), mode='wrap'
  )
  streaks = np.clip(streaks, 0.0, 1.0)[..., None]
  clean = img.astype(np.float64) / 255.0
  lq = _quantise(1.0 - (1.0 - clean) * (1.0 - alpha * streaks))
  params = {
      'density': density,
      'length': length,
      'angle_deg': angle,
      'alpha': alpha,
      'num_streaks': int(seeds.sum()),
  }
  return lq, params


def degrade_rain(
    img_uint8: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
  """Adds synthetic rain streaks: thin motion-blurred lines at one angle.

  Draws the seed density, streak length (px), angle from vertical (degrees)
  and opacity, then a uniform field for the seed positions and one for their
  intensities; the seeds are convolved with an anti-aliased line kernel
  (wrapped borders), clipped to [0, 1] as a streak layer ``S`` and
  screen-blended as white: ``I = 1 - (1 - J)(1 - alpha S)``, so no pixel gets
  darker. Rounded to uint8. Arguments and result as
  :func:`degrade_low_light` (RGB input).
  """
  return _rain(img_uint8, rng)[0]


def _noise(
    img_uint8: np.ndarray, rng: np.random.Generator, sigma: float
) -> tuple[np.ndarray, dict[str, Any]]:
  img = _check_uint8(img_uint8)
  if not sigma >= 0:
    raise ValueError(f'noise sigma must be >= 0, got {sigma}.')
  noisy = img.astype(np.float64) + sigma * rng.standard_normal(img.shape)
  return quantize.quantize_255(noisy), {'sigma': float(sigma)}


def degrade_noise(
    img_uint8: np.ndarray,
    rng: np.random.Generator,
    sigma: float = NOISE_SIGMA,
) -> np.ndarray:
  """Adds white Gaussian noise of std ``sigma`` (0..255 units), uint8 out.

  ``clip(round(J + sigma * N(0, 1)), 0, 255)``; the clipping at 0 and 255
  makes the noise slightly non-Gaussian in very dark or bright regions.

  Args:
    img_uint8: RGB uint8 image (H, W, 3).
    rng: generator supplying the noise.
    sigma: noise standard deviation in 0..255 units (e.g. 25).

  Returns:
    The noisy image, uint8, same shape.
  """
  return _noise(img_uint8, rng, sigma)[0]


def _degrader(
    degradation: str, noise_sigma: float
) -> Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, dict]]:
  """The per-pair synthesis function (image, rng) -> (lq, draws)."""
  if degradation == 'low_light':
    return _degrade
  if degradation == 'underwater':
    return _underwater
  if degradation == 'rain':
    return _rain
  if degradation == 'noise':
    return functools.partial(_noise, sigma=noise_sigma)
  raise ValueError(
      f'Unknown degradation {degradation!r}; choose one of '
      f'{", ".join(DEGRADATIONS)}.'
  )


_sha256 = hashing.file_sha256


_RNG_RULE = 'np.random.default_rng([seed, crc32(name), 1])'


def _degradation_params(
    degradation: str, noise_sigma: float
) -> dict[str, Any]:
  """The manifest's description of a degradation model."""
  if degradation == 'low_light':
    # Unchanged from the first format: the default set's manifest (and so
    # its reuse check) stays byte-identical; it has no 'name' key.
    return {
        'gamma': GAMMA,
        'exposure_range': list(EXPOSURE_RANGE),
        'read_sigma_range': list(READ_SIGMA_RANGE),
        'shot_gain_range': list(SHOT_GAIN_RANGE),
        'noise': 'poisson(signal / shot_gain) * shot_gain + '
        'normal(0, read_sigma), in linear light',
        'quantisation': 'clip [0, 1], ** (1 / gamma), round to uint8',
        'rng': _RNG_RULE,
    }
  if degradation == 'underwater':
    return {
        'name': 'underwater',
        'model': 'J * t + A * (1 - t), t = exp(-beta * d), per channel',
        'beta_ranges': [list(r) for r in BETA_RANGES],
        'near_range': list(NEAR_RANGE),
        'span_range': list(SPAN_RANGE),
        'far_direction_deg': FAR_DIRECTION_DEG,
        'ambient_ranges': [list(r) for r in AMBIENT_RANGES],
        'quantisation': 'round to uint8',
        'rng': _RNG_RULE,
    }
  if degradation == 'rain':
    return {
        'name': 'rain',
        'model': '1 - (1 - J) * (1 - alpha * S), S = clip(seeds * line '
        'kernel, 0, 1)',
        'density_range': list(RAIN_DENSITY_RANGE),
        'intensity_range': list(RAIN_INTENSITY_RANGE),
        'length_range': list(RAIN_LENGTH_RANGE),
        'angle_deg': RAIN_ANGLE_DEG,
        'alpha_range': list(RAIN_ALPHA_RANGE),
        'quantisation': 'round to uint8',
        'rng': _RNG_RULE,
    }
  _degrader(degradation, noise_sigma)  # Raises for unknown names.
  return {
      'name': 'noise',
      'model': 'J + sigma * N(0, 1), 0..255 units',
      'sigma': float(noise_sigma),
      'quantisation': 'clip [0, 255], round to uint8',
      'rng': _RNG_RULE,
  }


def _params(
    seed: int,
    size: int,
    train_crops_per_image: int,
    degradation: str = 'low_light',
    noise_sigma: float = NOISE_SIGMA,
    train_photos: Sequence[str] = TRAIN_PHOTOS,
) -> dict[str, Any]:
  import skimage  # pylint: disable=g-import-not-at-top

  return {
      'seed': seed,
      'size': size,
      'train_crops_per_image': train_crops_per_image,
      'test_shape': list(_test_shape(size)),
      'train_photos': list(train_photos),
      'test_photos': list(TEST_PHOTOS),
      'photo_source': f'scikit-image {skimage.__version__} skimage.data',
      'degradation': _degradation_params(degradation, noise_sigma),
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


def _build(
    staging: str,
    params: dict[str, Any],
    degradation: str = 'low_light',
    noise_sigma: float = NOISE_SIGMA,
) -> dict[str, Any]:
  """Writes the pairs under ``staging``; returns the manifest."""
  seed, size = params['seed'], params['size']
  degrade = _degrader(degradation, noise_sigma)
  items = []  # (split, name, photo, gt, box)
  for photo_name in params['train_photos']:
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
    lq, draws = degrade(gt, rng)
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
    degradation: str = 'low_light',
    noise_sigma: float = NOISE_SIGMA,
    train_photos: Sequence[str] = TRAIN_PHOTOS,
) -> dict:
  """Builds (or reuses) a paired demo set under ``out_dir``.

  If ``out_dir`` already holds a complete set made with the same parameters
  (manifest present, every file's SHA-256 matching), nothing is written and
  the existing manifest is returned. Otherwise the set is built in a staging
  folder inside ``out_dir`` and moved into place; ``manifest.json`` is written
  last, atomically. An existing ``train/`` or ``test/`` folder is replaced only
  when ``out_dir`` holds a manifest written by this module (so switching the
  degradation of a folder rebuilds it). Byte-identical files need the same
  scikit-image photos and PNG encoder (Pillow/zlib); the manifest records the
  scikit-image version, and a version change rebuilds.

  Args:
    out_dir: destination folder (created if needed).
    seed: seed for crop positions and the degradation draws (>= 0).
    size: train crop side; the test images are (1.5 size, 2 size), rounded
      down to multiples of 8.
    train_crops_per_image: random crops taken from each train photo.
    degradation: ``'low_light'`` (default), ``'underwater'``, ``'rain'`` or
      ``'noise'`` (see the module docstring).
    noise_sigma: noise std in 0..255 units for ``degradation='noise'``
      (ignored otherwise).
    train_photos: which of :data:`TRAIN_PHOTOS` the train crops come from
      (in this order; default all).

  Returns:
    The manifest: ``params``, ``pairs`` (split, name, photo, box and the
    per-pair draws of the degradation, e.g. ``exposure``/``read_sigma``/
    ``shot_gain`` for low light), ``files`` (relative path -> SHA-256),
    ``num_train``, ``num_test`` and ``total_bytes``.

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
  if degradation == 'noise' and not noise_sigma >= 0:
    raise ValueError(f'noise_sigma must be >= 0, got {noise_sigma}.')
  _degrader(degradation, noise_sigma)  # Unknown names fail here.
  train_photos = tuple(train_photos)
  unknown = sorted(set(train_photos) - set(TRAIN_PHOTOS))
  if unknown or not train_photos or len(set(train_photos)) < len(
      train_photos):
    raise ValueError(
        f'train_photos must be distinct names from {TRAIN_PHOTOS}, got '
        f'{train_photos}.'
    )
  if degradation != 'noise':
    noise_sigma = NOISE_SIGMA  # Not recorded: no spurious rebuilds.
  params = _params(
      seed, size, train_crops_per_image, degradation, noise_sigma,
      train_photos
  )
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
    manifest = _build(staging, params, degradation, noise_sigma)
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
  """CLI entry: ``python -m restorect_jax.data.demo_data --out DIR``."""
  parser = argparse.ArgumentParser(
      prog='python -m restorect_jax.data.demo_data',
      description='Build a bundled paired demo set (low light, underwater, '
      'rain or noise) from scikit-image photos (no download).',
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
  parser.add_argument(
      '--train_photos',
      default=','.join(TRAIN_PHOTOS),
      help='Comma-separated train photos (default: all).',
  )
  parser.add_argument(
      '--degradation',
      choices=DEGRADATIONS,
      default='low_light',
      help='Synthetic degradation of the inputs (default: low_light).',
  )
  parser.add_argument(
      '--noise_sigma',
      type=float,
      default=NOISE_SIGMA,
      help='Noise std in 0..255 units for --degradation=noise.',
  )
  args = parser.parse_args(argv)
  manifest = make_demo_pairs(
      args.out,
      seed=args.seed,
      size=args.size,
      train_crops_per_image=args.train_crops_per_image,
      degradation=args.degradation,
      noise_sigma=args.noise_sigma,
      train_photos=[p for p in args.train_photos.split(',') if p],
  )
  print(
      f'{args.out}: {manifest["num_train"]} train pairs, '
      f'{manifest["num_test"]} test pairs, {manifest["total_bytes"]} bytes '
      f'({args.degradation})'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
