"""Shared helpers of the image-quality metrics: inputs, files, model caches.

Resampling (MATLAB ``imresize``) and kernels live in :mod:`restorect_jax.ops`.

Image conventions used by every metric in :mod:`restorect_jax.evaluation.iqa`:

* ``uint8`` arrays are on the [0, 255] scale;
* floating-point arrays are on the [0, 1] scale (values outside are an error
  only where a metric says so; most metrics clip nothing);
* colour images are ``(H, W, 3)`` RGB, channels last.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import pickle
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_T = TypeVar('_T')

import numpy as np


def check_image(img: Any, *, allow_gray: bool = False,
                name: str = 'image') -> np.ndarray:
  """Returns ``img`` as an array after checking rank, channels and dtype."""
  x = np.asarray(img)
  if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
    raise TypeError(f'{name} must be uint8 (0..255) or float (0..1), got '
                    f'{x.dtype}.')
  if x.ndim == 2 and allow_gray:
    return x
  if x.ndim != 3 or x.shape[-1] != 3:
    want = '(H, W, 3) RGB' + (' or (H, W)' if allow_gray else '')
    raise ValueError(f'{name} must be {want}, got shape {x.shape}.')
  return x


def to_float01(img: Any, dtype: Any = np.float64) -> np.ndarray:
  """uint8 -> ``x / 255``; floats are returned (cast to ``dtype``) as is."""
  x = np.asarray(img)
  if x.dtype == np.uint8:
    return x.astype(dtype) / dtype(255.0)
  return x.astype(dtype)


def to_255(img: Any, dtype: Any = np.float64) -> np.ndarray:
  """uint8 -> float on [0, 255]; floats on [0, 1] are multiplied by 255."""
  x = np.asarray(img)
  if x.dtype == np.uint8:
    return x.astype(dtype)
  return x.astype(dtype) * dtype(255.0)


# --------------------------------------------------------------------------
# Files shipped inside installed packages, and safe loading.
# --------------------------------------------------------------------------


def package_file(package: str, *parts: str) -> pathlib.Path | None:
  """Path of a file inside an installed package, without importing it.

  Uses ``importlib.util.find_spec`` on the top-level package, which locates
  the package directory but does not run its ``__init__``.

  Returns:
    The path if the package is installed and the file exists, else None.
  """
  try:
    spec = importlib.util.find_spec(package)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  for root in spec.submodule_search_locations:
    path = pathlib.Path(root).joinpath(*parts)
    if path.is_file():
      return path
  return None


def cached_by_env(cache: dict[str, _T], env_var: str,
                  load: Callable[[], _T]) -> _T:
  """``load()`` once per value of the environment variable ``env_var``.

  The default model / parameter files of a metric are found through an
  environment variable; caching by its value lets a changed variable take
  effect while the file is read only once per process.
  """
  key = os.environ.get(env_var, '')
  if key not in cache:
    cache[key] = load()
  return cache[key]


def torch_hub_checkpoint(filename: str) -> pathlib.Path | None:
  """``$TORCH_HOME/hub/checkpoints/<filename>`` if it exists.

  ``TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch`` (``~/.cache/torch``),
  the directory where ``torch.hub`` caches downloaded weights.
  """
  home = os.environ.get('TORCH_HOME')
  if not home:
    cache = os.environ.get('XDG_CACHE_HOME',
                           os.path.join(os.path.expanduser('~'), '.cache'))
    home = os.path.join(cache, 'torch')
  path = pathlib.Path(home) / 'hub' / 'checkpoints' / filename
  return path if path.is_file() else None


_NUMERIC_KINDS = frozenset('biuf')


def _safe_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
  del align, copy  # Arguments of numpy.dtype's pickle reduction.
  if not isinstance(spec, str):
    raise pickle.UnpicklingError(f'Refusing dtype spec {spec!r}.')
  dt = np.dtype(spec)
  if dt.kind not in _NUMERIC_KINDS or dt.fields is not None:
    raise pickle.UnpicklingError(f'Refusing non-numeric dtype {dt}.')
  return dt


def _safe_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
  if cls is not np.ndarray:
    raise pickle.UnpicklingError(f'Refusing array subclass {cls!r}.')
  del dtype_code  # The real dtype arrives with __setstate__.
  return np.ndarray(shape, dtype=np.uint8)


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """An unpickler that can only rebuild plain numeric NumPy arrays.

  Following the "restricting globals" recipe of the :mod:`pickle` docs,
  :meth:`find_class` resolves exactly three names -- ``ndarray``, ``dtype``
  and ``_reconstruct`` -- to checked stand-ins: arrays must be plain
  ``ndarray``, dtypes must be numeric (bool/int/uint/float, no object or
  structured dtypes). Any other global, and persistent ids, raise
  :class:`pickle.UnpicklingError`. Containers (dicts, lists, tuples), strings,
  numbers and bytes are built by the pickle machine itself without calling
  any code.
  """

  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'): _safe_reconstruct,
      ('numpy._core.multiarray', '_reconstruct'): _safe_reconstruct,
      ('numpy', 'ndarray'): np.ndarray,
      ('numpy', 'dtype'): _safe_dtype,
  }

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._ALLOWED[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
          f'Refusing to load global {module}.{name}: only plain NumPy '
          'arrays are allowed in this file.') from None

  def persistent_load(self, pid: Any) -> Any:
    raise pickle.UnpicklingError('Persistent ids are not allowed.')


def load_numpy_pickle(path: str | os.PathLike[str]) -> Any:
  """Loads a pickle that holds only nested containers of numeric arrays.

  The file is read with :class:`_NumpyOnlyUnpickler`, so a tampered file
  can at worst fail to load; it cannot run code. The result is checked to be
  made of dicts (string keys), lists/tuples and numeric ``ndarray`` leaves.

  Args:
    path: The pickle file.

  Returns:
    The unpickled tree.
  """
  with open(path, 'rb') as f:
    tree = _NumpyOnlyUnpickler(f).load()

  def check(t: Any, where: str) -> None:
    if isinstance(t, Mapping):
      for k, v in t.items():
        if not isinstance(k, str):
          raise pickle.UnpicklingError(f'Non-string key {k!r} at {where}.')
        check(v, f'{where}/{k}')
    elif isinstance(t, (list, tuple)):
      for i, v in enumerate(t):
        check(v, f'{where}[{i}]')
    elif not (isinstance(t, np.ndarray) and t.dtype.kind in _NUMERIC_KINDS
              and not t.dtype.hasobject and t.dtype.fields is None):
      raise pickle.UnpicklingError(
          f'Unexpected leaf {type(t).__name__} at {where or "/"}.')

  check(tree, '')
  return tree


class WeightFileError(ValueError):
  """A metric's weight file exists but cannot be used."""


def load_checked(path: str | os.PathLike[str], what: str,
                 load: Callable[[], _T]) -> _T:
  """``load()``, with any failure reported as one error naming ``path``.

  The metric loaders raise many types for a damaged, hostile or mismatched
  file (``UnpicklingError``, ``EOFError``, ``KeyError``, ``ValueError``…);
  callers that validate weights up front want one message that says which
  file and what it should have been.

  Args:
    path: the file ``load`` reads.
    what: what the file should hold, e.g. ``'fid weights'``.
    load: reads and checks the file.

  Raises:
    WeightFileError: ``load`` failed.
  """
  if os.path.isfile(path) and os.path.getsize(path) == 0:
    raise WeightFileError(f'{path}: the file is empty (expected {what}).')
  try:
    with warnings.catch_warnings():
      # torch warns about pickle protocols before refusing hostile files.
      warnings.simplefilter('ignore', UserWarning)
      return load()
  except pickle.UnpicklingError as e:
    # Not torch's advice to retry with weights_only=False: never do that.
    raise WeightFileError(
        f'{path}: refused as {what}: it holds pickled Python objects other '
        'than plain arrays, which could run code.') from e
  except Exception as e:  # pylint: disable=broad-except
    lines = str(e).strip().splitlines()
    why = f'{type(e).__name__}: {lines[0][:300]}' if lines else (
        type(e).__name__)
    raise WeightFileError(f'{path}: cannot be used as {what} ({why}).') from e
