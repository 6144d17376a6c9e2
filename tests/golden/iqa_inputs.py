"""Deterministic test images for the IQA golden tests.

Shared by ``tests/iqa_test.py`` and ``tests/golden/record_iqa.py`` so both
see the same pixels. Everything is made from photographs bundled in the
scikit-image wheel plus seeded degradations; no image file is stored.
"""

from __future__ import annotations

import numpy as np
from skimage import data


def _u8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _box_blur(x: np.ndarray, r: int) -> np.ndarray:
  """Separable (2r+1)-tap mean filter with edge replication, float64."""
  k = 2 * r + 1
  p = np.pad(x.astype(np.float64), ((r, r), (r, r), (0, 0)), mode='edge')
  c = np.cumsum(np.pad(p, ((1, 0), (0, 0), (0, 0))), axis=0)
  p = (c[k:] - c[:-k]) / k
  c = np.cumsum(np.pad(p, ((0, 0), (1, 0), (0, 0))), axis=1)
  return (c[:, k:] - c[:, :-k]) / k


def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """``name -> (reference, distorted)`` uint8 RGB pairs, 64x64.

  Used for LPIPS (the VGG variant is the expensive one).
  """
  rng = np.random.default_rng(20261123)
  astro = data.astronaut()[60:188:2, 140:268:2]  # face, 64x64
  cat = data.chelsea()[60:188:2, 160:288:2]
  coffee = data.coffee()[100:164, 200:264]
  out = {}
  out['astronaut_noise'] = (
      astro, _u8(astro + rng.normal(0.0, 18.0, astro.shape)))
  out['chelsea_blur'] = (cat, _u8(_box_blur(cat, 2)))
  dark = 255.0 * (coffee / 255.0) ** 1.8 * 0.6
  out['coffee_dark'] = (coffee, _u8(dark + rng.normal(0.0, 4.0, dark.shape)))
  return out


def singles() -> dict[str, np.ndarray]:
  """``name -> image`` uint8 RGB for the no-reference metrics.

  Sizes: 256x256 (NIQE's 96-pixel blocks after a 5-pixel crop give 2x2
  blocks, as RestoRect's 256x256 evaluation) and odd sizes for the block /
  half-size rounding paths of BRISQUE, UIQM and UCIQE.
  """
  rng = np.random.default_rng(7)
  astro = data.astronaut()[::2, ::2]  # 256x256
  coffee = data.coffee()[40:296, 150:406]  # 256x256
  cat = data.chelsea()[20:269, 40:361]  # 249x321
  out = {}
  out['astronaut'] = astro
  out['astronaut_noise'] = _u8(astro + rng.normal(0.0, 12.0, astro.shape))
  out['coffee_blur'] = _u8(_box_blur(coffee, 2))
  # A bluish-green "underwater" cast with low contrast.
  water = coffee * np.array([0.35, 0.8, 0.9]) + np.array([10.0, 40.0, 55.0])
  out['coffee_underwater'] = _u8(water)
  out['chelsea_odd'] = cat
  low = 255.0 * (cat / 255.0) ** 2.2 * 0.5
  out['chelsea_lowlight'] = _u8(low + rng.normal(0.0, 3.0, low.shape))
  return out


def small_singles() -> dict[str, np.ndarray]:
  """Smaller odd-sized crops (fast BRISQUE / UIQM / UCIQE cases)."""
  rng = np.random.default_rng(11)
  rocket = data.rocket()[100:197, 200:323]  # 97x123
  cat = data.chelsea()[100:177, 150:255]  # 77x105
  return {
      'rocket_97x123': rocket,
      'chelsea_77x105_jpegish': _u8(
          np.round(cat / 16.0) * 16.0 + rng.normal(0.0, 2.0, cat.shape)),
  }


def feature_batches() -> tuple[np.ndarray, np.ndarray]:
  """Two seeded, correlated feature sets ``(40, 16)`` / ``(50, 16)`` for FID."""
  rng = np.random.default_rng(99)
  mix = rng.normal(size=(16, 16))
  a = rng.normal(size=(40, 16)) @ mix
  b = rng.normal(size=(50, 16)) @ (mix + 0.3 * rng.normal(size=(16, 16))) + 0.5
  return a, b


def inception_images() -> np.ndarray:
  """Two 75x75 uint8 RGB images (Inception's smallest input size)."""
  a = data.astronaut()[30:480:6, 30:480:6][:75, :75]
  b = data.coffee()[50:350:4, 100:400:4][:75, :75]
  return np.stack([a, b])


def synthetic_niqe_params() -> tuple[np.ndarray, np.ndarray]:
  """A seeded stand-in pristine model ``(mu (36,), cov (36, 36))``.

  The MATLAB model is not available where the tests run, so the goldens
  are recorded with this one; the NIQE formula does not care which.
  """
  rng = np.random.default_rng(36)
  scale = np.abs(rng.normal(0.5, 0.4, 36)) + 0.05
  mu = rng.normal(0.0, 1.0, 36) * scale + np.tile(
      [2.5, 0.8] + [0.8, 0.05, 0.15, 0.2] * 4, 2)
  a = rng.normal(0.0, 0.3, (36, 36)) * scale[:, None]
  cov = a @ a.T / 36.0 + 0.01 * np.eye(36)
  return mu, cov


def synthetic_svr_text(num_sv: int = 40) -> str:
  """A seeded LIBSVM epsilon-SVR model file (36 features, sparse rows).

  gamma and rho equal the LIVE model's, the constants piq hard-codes.
  """
  rng = np.random.default_rng(774)
  lines = ['svm_type epsilon_svr', 'kernel_type rbf', 'gamma 0.05',
           'nr_class 2', f'total_sv {num_sv}', 'rho -153.591', 'SV']
  for _ in range(num_sv):
    coef = float(np.round(rng.uniform(-1024.0, 1024.0), 4))
    v = np.round(rng.uniform(-1.0, 1.0, 36), 6)
    v[rng.uniform(size=36) < 0.2] = 0.0
    items = ' '.join(f'{i + 1}:{x:g}' for i, x in enumerate(v) if x != 0.0)
    lines.append(f'{coef:g} {items} ')
  return '\n'.join(lines) + '\n'
