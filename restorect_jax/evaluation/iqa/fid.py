"""Fréchet Inception Distance between two image sets.

``FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` over
2048-d Inception-v3 pool features
(:mod:`restorect_jax.evaluation.iqa.inception`), with ``S`` the unbiased
(``ddof=1``) feature covariance. The trace of the matrix square root is
computed from symmetric eigendecompositions
(``tr sqrt(S_a^(1/2) S_b S_a^(1/2))``, equal to ``tr sqrtm(S_a S_b)`` for
covariance matrices) instead of ``scipy.linalg.sqrtm``, which is slower and
can return spurious imaginary parts.

No Inception weights ship with any package on PyPI, so the weight file is
supplied by the user: ``weights=`` (a path), else
``$RESTORECT_INCEPTION_WEIGHTS``, else the torch hub cache
(``~/.cache/torch/hub/checkpoints/``) holding the standard file name of the
chosen flavour. RestoRect's protocol is
``fid(gt_images, pred_images, flavour='torchvision')`` on 256x256 images
(without the mean/variance correction used for the other metrics).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.evaluation.iqa import _common
from restorect_jax.evaluation.iqa import inception

ENV_VAR = 'RESTORECT_INCEPTION_WEIGHTS'

_HOW_TO_GET = {
    'torchvision': (
        "torchvision's ImageNet Inception-v3 weights; e.g. on a machine with "
        "internet access run `torchvision.models.inception_v3(weights="
        "'IMAGENET1K_V1')` once, which saves the file in "
        '~/.cache/torch/hub/checkpoints/'),
    'pytorch_fid': (
        "pytorch-fid's FID Inception weights; e.g. `pip install pytorch-fid` "
        'on a machine with internet access and build '
        '`pytorch_fid.inception.InceptionV3()` once, which saves the file in '
        '~/.cache/torch/hub/checkpoints/'),
}


def weights_path(flavour: inception.Flavour = 'torchvision',
                 weights: str | os.PathLike[str] | None = None) -> str:
  """Resolves the Inception weight file (see module doc).

  Raises:
    FileNotFoundError: naming the expected file and how to obtain it.
  """
  if flavour not in inception.FLAVOURS:
    raise ValueError(f'flavour must be one of {inception.FLAVOURS}, got '
                     f'{flavour!r}.')
  fname = inception.WEIGHT_FILES[flavour]
  path = weights or os.environ.get(ENV_VAR)
  if path:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'Inception weights {path} do not exist '
                              f'(expected {fname}).')
    return str(path)
  found = _common.torch_hub_checkpoint(fname)
  if found is None:
    raise FileNotFoundError(
        f'FID ({flavour}) needs the Inception-v3 weight file {fname}, which '
        'is not shipped with this package and was not found. It is '
        f'{_HOW_TO_GET[flavour]}. Pass its path as weights=..., or set '
        f'{ENV_VAR}.')
  return str(found)


class InceptionFeatures:
  """Loads Inception weights once and maps image batches to 2048-d features.

  The network is jitted once per input shape (batches are padded to
  ``batch_size`` so a whole data set compiles once).
  """

  def __init__(self, flavour: inception.Flavour = 'torchvision',
               weights: str | os.PathLike[str] | None = None,
               batch_size: int = 16, resize: bool = True) -> None:
    self.flavour = flavour
    self.batch_size = batch_size
    path = weights_path(flavour, weights)
    sd = inception.load_state_dict(path)
    self.params = jax.tree.map(jnp.asarray, inception.convert_state_dict(sd))
    self._fn = jax.jit(functools.partial(
        inception.features_fn, flavour=flavour, resize=resize))

  @classmethod
  def from_params(cls, params: Any, flavour: inception.Flavour,
                  batch_size: int = 16, resize: bool = True
                  ) -> 'InceptionFeatures':
    """An extractor around an already converted parameter tree."""
    self = cls.__new__(cls)
    self.flavour = flavour
    self.batch_size = batch_size
    self.params = jax.tree.map(jnp.asarray, params)
    self._fn = jax.jit(functools.partial(
        inception.features_fn, flavour=flavour, resize=resize))
    return self

  def __call__(self, images: Iterable[Any] | np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` (or a list of same-size) RGB images -> ``(N, 2048)``.

    uint8 images are divided by 255 (``ToTensor``); floats are taken as
    [0, 1].
    """
    x = np.stack([_common.to_float01(_common.check_image(im), np.float32)
                  for im in images])
    out = []
    for i in range(0, len(x), self.batch_size):
      chunk = x[i:i + self.batch_size]
      n = len(chunk)
      if n < self.batch_size:
        pad = np.zeros((self.batch_size - n,) + chunk.shape[1:], chunk.dtype)
        chunk = np.concatenate([chunk, pad])
      out.append(np.asarray(self._fn(self.params, chunk))[:n])
    return np.concatenate(out).astype(np.float64)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance (``ddof=1``) of ``(N, D)`` features."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f'Need (N >= 2, D) features, got {f.shape}.')
  return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((s + s.T) / 2.0)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

  Args:
    mu1: ``(D,)`` mean.
    sigma1: ``(D, D)`` covariance (symmetric PSD).
    mu2: ``(D,)`` mean.
    sigma2: ``(D, D)`` covariance.

  Returns:
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.
  """
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2)
  s1 = np.atleast_2d(sigma1).astype(np.float64)
  s2 = np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (
      mu1.size, mu1.size):
    raise ValueError(f'Shape mismatch: {mu1.shape}, {s1.shape}, {mu2.shape}, '
                     f'{s2.shape}.')
  r = _sqrt_psd(s1)
  m = r @ s2 @ r
  w = np.linalg.eigvalsh((m + m.T) / 2.0)
  tr_covmean = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
  """FID between two ``(N, D)`` feature sets.

  With few samples (the usual case for restoration test sets: N < 2048) the
  covariances are rank-deficient, and square roots of their ~1e-16 noise
  eigenvalues add up to a visible error. Then ``tr (S_a S_b)^(1/2)`` is taken
  exactly as the nuclear norm of ``A B^T``, where ``S_a = A^T A`` and
  ``S_b = B^T B`` with ``A`` the centred features over ``sqrt(N_a - 1)``.
  """
  mu_a, s_a = feature_statistics(a)
  mu_b, s_b = feature_statistics(b)
  na, nb = len(a), len(b)
  if na * nb > 4_000_000 or min(na, nb) > s_a.shape[0]:
    return frechet_distance(mu_a, s_a, mu_b, s_b)
  am = (np.asarray(a, np.float64) - mu_a) / np.sqrt(na - 1)
  bm = (np.asarray(b, np.float64) - mu_b) / np.sqrt(nb - 1)
  tr_covmean = float(np.sum(np.linalg.svd(am @ bm.T, compute_uv=False)))
  diff = mu_a - mu_b
  return float(diff @ diff + np.sum(am * am) + np.sum(bm * bm)
               - 2.0 * tr_covmean)


def fid(images_a: Sequence[Any] | np.ndarray,
        images_b: Sequence[Any] | np.ndarray, *,
        flavour: inception.Flavour = 'torchvision',
        weights: str | os.PathLike[str] | None = None,
        batch_size: int = 16) -> float:
  """FID between two sets of RGB images (at least two images each).

  Args:
    images_a: Images ``(H, W, 3)``, uint8 or [0, 1] float (e.g. ground truth).
    images_b: The other set (e.g. predictions); sizes may differ from a's.
    flavour: ``'torchvision'`` (RestoRect) or ``'pytorch_fid'``.
    weights: The weight file; see :func:`weights_path`.
    batch_size: Images per network call.

  Returns:
    The FID (0 for identical sets, up to round-off).

  Raises:
    FileNotFoundError: when the weight file cannot be found.
  """
  extract = _extractor(flavour, weights_path(flavour, weights), batch_size)
  return fid_from_features(extract(images_a), extract(images_b))


@functools.lru_cache(maxsize=4)
def _extractor(flavour: inception.Flavour, weights: str,
               batch_size: int) -> InceptionFeatures:
  return InceptionFeatures(flavour, weights, batch_size)
