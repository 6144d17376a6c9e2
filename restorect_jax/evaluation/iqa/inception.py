"""Inception-v3 pool features (2048-d) in JAX, from PyTorch weight files.

Two published weight sets are supported, each with its own input handling
and (for pytorch-fid) block variants:

* ``'torchvision'``: torchvision's ``inception_v3`` ImageNet weights
  (``inception_v3_google-0cc3c7bd.pth``), as RestoRect's evaluation used
  them: [0, 1] RGB, ImageNet mean/std normalisation, bilinear resize to
  299x299 (``align_corners=False``, no antialiasing), ``transform_input``
  off, features after the global average pool.
* ``'pytorch_fid'``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
  (the TF FID graph ported to PyTorch): bilinear resize to 299, then
  ``2 x - 1``. Its blocks differ from torchvision's: the average-pool
  branches of Mixed_5b-d, 6b-e and 7b ignore padding
  (``count_include_pad=False``) and Mixed_7c's pool branch is a 3x3 max pool.

The network is plain ``jax.numpy``/``lax`` code on a nested dict whose keys
are the PyTorch module names (``Mixed_5b/branch1x1/conv/kernel`` for
``Mixed_5b.branch1x1.conv.weight``). :func:`convert_state_dict` checks a
state dict strictly (every required tensor present with the right shape; the
classifier ``fc.*``, ``AuxLogits.*`` and ``num_batches_tracked`` are the only
keys it ignores) and :func:`to_state_dict` is its inverse (for tests and
round trips). Batch norms are in inference mode (eps 1e-3).
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.ops import resample

Flavour = Literal['torchvision', 'pytorch_fid']
FLAVOURS = ('torchvision', 'pytorch_fid')
WEIGHT_FILES = {
    'torchvision': 'inception_v3_google-0cc3c7bd.pth',
    'pytorch_fid': 'pt_inception-2015-12-05-6726825d.pth',
}
FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

# A conv spec: (name, in, out, (kh, kw), stride, (ph, pw)).
_Conv = tuple[str, int, int, tuple[int, int], int, tuple[int, int]]


def _c(name: str, cin: int, cout: int, k: int | tuple[int, int] = 1,
       stride: int = 1, pad: int | tuple[int, int] = 0) -> _Conv:
  k = (k, k) if isinstance(k, int) else k
  pad = (pad, pad) if isinstance(pad, int) else pad
  return (name, cin, cout, k, stride, pad)


def _block_a(cin: int, pool: int) -> list[_Conv]:
  return [_c('branch1x1', cin, 64), _c('branch5x5_1', cin, 48),
          _c('branch5x5_2', 48, 64, 5, pad=2),
          _c('branch3x3dbl_1', cin, 64), _c('branch3x3dbl_2', 64, 96, 3, pad=1),
          _c('branch3x3dbl_3', 96, 96, 3, pad=1),
          _c('branch_pool', cin, pool)]


def _block_b(cin: int) -> list[_Conv]:
  return [_c('branch3x3', cin, 384, 3, 2), _c('branch3x3dbl_1', cin, 64),
          _c('branch3x3dbl_2', 64, 96, 3, pad=1),
          _c('branch3x3dbl_3', 96, 96, 3, 2)]


def _block_c(cin: int, c7: int) -> list[_Conv]:
  return [_c('branch1x1', cin, 192), _c('branch7x7_1', cin, c7),
          _c('branch7x7_2', c7, c7, (1, 7), pad=(0, 3)),
          _c('branch7x7_3', c7, 192, (7, 1), pad=(3, 0)),
          _c('branch7x7dbl_1', cin, c7),
          _c('branch7x7dbl_2', c7, c7, (7, 1), pad=(3, 0)),
          _c('branch7x7dbl_3', c7, c7, (1, 7), pad=(0, 3)),
          _c('branch7x7dbl_4', c7, c7, (7, 1), pad=(3, 0)),
          _c('branch7x7dbl_5', c7, 192, (1, 7), pad=(0, 3)),
          _c('branch_pool', cin, 192)]


def _block_d(cin: int) -> list[_Conv]:
  return [_c('branch3x3_1', cin, 192), _c('branch3x3_2', 192, 320, 3, 2),
          _c('branch7x7x3_1', cin, 192),
          _c('branch7x7x3_2', 192, 192, (1, 7), pad=(0, 3)),
          _c('branch7x7x3_3', 192, 192, (7, 1), pad=(3, 0)),
          _c('branch7x7x3_4', 192, 192, 3, 2)]


def _block_e(cin: int) -> list[_Conv]:
  return [_c('branch1x1', cin, 320), _c('branch3x3_1', cin, 384),
          _c('branch3x3_2a', 384, 384, (1, 3), pad=(0, 1)),
          _c('branch3x3_2b', 384, 384, (3, 1), pad=(1, 0)),
          _c('branch3x3dbl_1', cin, 448),
          _c('branch3x3dbl_2', 448, 384, 3, pad=1),
          _c('branch3x3dbl_3a', 384, 384, (1, 3), pad=(0, 1)),
          _c('branch3x3dbl_3b', 384, 384, (3, 1), pad=(1, 0)),
          _c('branch_pool', cin, 192)]


# (module name, block kind, its convs); 'stem' entries are single convs.
ARCH: tuple[tuple[str, str, list[_Conv]], ...] = (
    ('Conv2d_1a_3x3', 'stem', [_c('', 3, 32, 3, 2)]),
    ('Conv2d_2a_3x3', 'stem', [_c('', 32, 32, 3)]),
    ('Conv2d_2b_3x3', 'stem', [_c('', 32, 64, 3, pad=1)]),
    ('Conv2d_3b_1x1', 'stem', [_c('', 64, 80, 1)]),
    ('Conv2d_4a_3x3', 'stem', [_c('', 80, 192, 3)]),
    ('Mixed_5b', 'A', _block_a(192, 32)),
    ('Mixed_5c', 'A', _block_a(256, 64)),
    ('Mixed_5d', 'A', _block_a(288, 64)),
    ('Mixed_6a', 'B', _block_b(288)),
    ('Mixed_6b', 'C', _block_c(768, 128)),
    ('Mixed_6c', 'C', _block_c(768, 160)),
    ('Mixed_6d', 'C', _block_c(768, 160)),
    ('Mixed_6e', 'C', _block_c(768, 192)),
    ('Mixed_7a', 'D', _block_d(768)),
    ('Mixed_7b', 'E', _block_e(1280)),
    ('Mixed_7c', 'E', _block_e(2048)),
)

_SUFFIXES = {  # torch suffix -> (flax leaf, layout)
    'conv.weight': ('conv', 'kernel'),
    'bn.weight': ('bn', 'scale'),
    'bn.bias': ('bn', 'bias'),
    'bn.running_mean': ('bn', 'mean'),
    'bn.running_var': ('bn', 'var'),
}
_IGNORED = re.compile(r'^(fc\.|AuxLogits\.)|\.num_batches_tracked$')


def _convs() -> Iterator[tuple[str, _Conv]]:
  """``(torch prefix, spec)`` of every BasicConv2d, in network order."""
  for module, _, convs in ARCH:
    for spec in convs:
      yield (f'{module}.{spec[0]}' if spec[0] else module), spec


def torch_shapes() -> dict[str, tuple[int, ...]]:
  """Every required PyTorch state-dict key and its shape (the template)."""
  out = {}
  for prefix, (_, cin, cout, (kh, kw), _, _) in _convs():
    out[f'{prefix}.conv.weight'] = (cout, cin, kh, kw)
    for s in ('bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'):
      out[f'{prefix}.{s}'] = (cout,)
  return out


def _set(tree: dict, path: list[str], value: Any) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: list[str]) -> Any:
  for p in path:
    tree = tree[p]
  return tree


def _flax_path(torch_key: str) -> list[str]:
  for suffix, (group, leaf) in _SUFFIXES.items():
    if torch_key.endswith('.' + suffix):
      return torch_key[:-len(suffix) - 1].split('.') + [group, leaf]
  raise KeyError(torch_key)


def convert_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """PyTorch Inception-v3 state dict -> float32 JAX parameter tree.

  Args:
    state_dict: Key -> tensor/array (torchvision or pytorch-fid naming; both
      use the same keys). A ``module.`` prefix on every key is stripped.

  Returns:
    The nested parameter dict used by :func:`pool_features`.

  Raises:
    ValueError: listing every missing, unexpected or mis-shaped key.
  """
  sd = dict(state_dict)
  if sd and all(k.startswith('module.') for k in sd):
    sd = {k[len('module.'):]: v for k, v in sd.items()}
  shapes = torch_shapes()
  missing = sorted(k for k in shapes if k not in sd)
  unexpected = sorted(k for k in sd
                      if k not in shapes and not _IGNORED.search(k))
  wrong = []
  params: dict[str, Any] = {}
  for key, shape in shapes.items():
    if key not in sd:
      continue
    v = sd[key]
    v = v.detach().cpu().numpy() if hasattr(v, 'detach') else np.asarray(v)
    if tuple(v.shape) != shape:
      wrong.append(f'{key}: expected {shape}, got {tuple(v.shape)}')
      continue
    v = v.astype(np.float32)
    if v.ndim == 4:
      v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    _set(params, _flax_path(key), v)
  if missing or unexpected or wrong:
    msg = ['Not an Inception-v3 state dict of the expected layout:']
    if missing:
      msg.append(f'{len(missing)} missing: {", ".join(missing[:8])}'
                 + (' ...' if len(missing) > 8 else ''))
    if unexpected:
      msg.append(f'{len(unexpected)} unexpected: {", ".join(unexpected[:8])}'
                 + (' ...' if len(unexpected) > 8 else ''))
    if wrong:
      msg.append(f'{len(wrong)} mis-shaped: {"; ".join(wrong[:8])}')
    raise ValueError('\n'.join(msg))
  return params


def to_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The inverse of :func:`convert_state_dict` (NumPy arrays, torch layout).

  ``num_batches_tracked`` and the classifier are not produced.
  """
  out = {}
  for key in torch_shapes():
    v = np.asarray(_get(params, _flax_path(key)))
    out[key] = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v
  return out


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """A random state dict with the template's keys and shapes (for tests).

  Values are drawn key by key in sorted order from ``default_rng(seed)`` so
  that other code can rebuild the same tensors: He-normal conv weights, BN
  scale in [0.5, 1.5), bias / mean N(0, 0.1^2), variance in [0.5, 1.5).
  """
  rng = np.random.default_rng(seed)
  out = {}
  for key, shape in sorted(torch_shapes().items()):
    if key.endswith('conv.weight'):
      fan_in = shape[1] * shape[2] * shape[3]
      v = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif key.endswith(('bn.weight', 'bn.running_var')):
      v = rng.uniform(0.5, 1.5, shape)
    else:
      v = rng.normal(0.0, 0.1, shape)
    out[key] = v.astype(np.float32)
  return out


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
  """Reads a ``.pth`` with ``torch.load(weights_only=True)``, or an ``.npz``.

  A ``{'state_dict': ...}`` wrapper is unwrapped.
  """
  path = pathlib.Path(path)
  if path.suffix == '.npz':
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f'Reading {path} needs torch (pip install '
                      'restorect_jax[torch]), or convert it to .npz.') from e
  obj = torch.load(path, map_location='cpu', weights_only=True)
  if isinstance(obj, Mapping) and 'state_dict' in obj:
    obj = obj['state_dict']
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path}: expected a state dict, got {type(obj)}.')
  return dict(obj)


# --------------------------------------------------------------------------
# Forward pass.
# --------------------------------------------------------------------------


def _basic_conv(p: Mapping[str, Any], x: jax.Array, spec: _Conv) -> jax.Array:
  _, _, _, _, stride, (ph, pw) = spec
  y = jax.lax.conv_general_dilated(
      x, p['conv']['kernel'], (stride, stride), ((ph, ph), (pw, pw)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=jax.lax.Precision.HIGHEST)
  bn = p['bn']
  inv = bn['scale'] * jax.lax.rsqrt(bn['var'] + BN_EPS)
  return jax.nn.relu(y * inv + (bn['bias'] - bn['mean'] * inv))


def _max_pool(x: jax.Array, k: int = 3, s: int = 2, pad: int = 0
              ) -> jax.Array:
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1),
                               (1, s, s, 1),
                               ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool3(x: jax.Array, include_pad: bool) -> jax.Array:
  """3x3, stride 1, padding 1 average pool."""
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1,) * 4, pad)
  if include_pad:
    return s / 9.0
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  n = jax.lax.reduce_window(ones, 0.0, jax.lax.add, (1, 3, 3, 1), (1,) * 4,
                            pad)
  return s / n


def _block(p: Mapping[str, Any], x: jax.Array, kind: str,
           convs: list[_Conv], fid: bool, last: bool) -> jax.Array:
  c = {spec[0]: functools.partial(_basic_conv, p[spec[0]], spec=spec)
       for spec in convs}
  if kind in ('A', 'C', 'E'):
    if fid and kind == 'E' and last:
      pooled = _max_pool(x, 3, 1, 1)
    else:
      pooled = _avg_pool3(x, include_pad=not fid)
    pool = c['branch_pool'](pooled)
  if kind == 'A':
    return jnp.concatenate([
        c['branch1x1'](x), c['branch5x5_2'](c['branch5x5_1'](x)),
        c['branch3x3dbl_3'](c['branch3x3dbl_2'](c['branch3x3dbl_1'](x))),
        pool], axis=-1)
  if kind == 'B':
    return jnp.concatenate([
        c['branch3x3'](x),
        c['branch3x3dbl_3'](c['branch3x3dbl_2'](c['branch3x3dbl_1'](x))),
        _max_pool(x)], axis=-1)
  if kind == 'C':
    b7 = c['branch7x7_3'](c['branch7x7_2'](c['branch7x7_1'](x)))
    d = x
    for i in range(1, 6):
      d = c[f'branch7x7dbl_{i}'](d)
    return jnp.concatenate([c['branch1x1'](x), b7, d, pool], axis=-1)
  if kind == 'D':
    b3 = c['branch3x3_2'](c['branch3x3_1'](x))
    b7 = x
    for i in range(1, 5):
      b7 = c[f'branch7x7x3_{i}'](b7)
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)
  # 'E'
  b3 = c['branch3x3_1'](x)
  b3 = jnp.concatenate([c['branch3x3_2a'](b3), c['branch3x3_2b'](b3)], -1)
  d = c['branch3x3dbl_2'](c['branch3x3dbl_1'](x))
  d = jnp.concatenate([c['branch3x3dbl_3a'](d), c['branch3x3dbl_3b'](d)], -1)
  return jnp.concatenate([c['branch1x1'](x), b3, d, pool], axis=-1)


def resize_bilinear(x: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """``(N, H, W, C)`` -> ``(N, size, size, C)`` as torch's bilinear resize."""
  if x.shape[1] == size and x.shape[2] == size:
    return x
  mh = jnp.asarray(resample.torch_bilinear_matrix(x.shape[1], size))
  mw = jnp.asarray(resample.torch_bilinear_matrix(x.shape[2], size))
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,nhwc->nowc', mh, x, precision=hi)
  return jnp.einsum('pw,nowc->nopc', mw, x, precision=hi)


def preprocess(x: jax.Array, flavour: Flavour, resize: bool = True
               ) -> jax.Array:
  """[0, 1] RGB ``(N, H, W, 3)`` -> the network input of ``flavour``."""
  if flavour == 'torchvision':
    x = (x - jnp.asarray(_IMAGENET_MEAN)) / jnp.asarray(_IMAGENET_STD)
    return resize_bilinear(x) if resize else x
  if flavour == 'pytorch_fid':
    x = resize_bilinear(x) if resize else x
    return 2.0 * x - 1.0
  raise ValueError(f'flavour must be one of {FLAVOURS}, got {flavour!r}.')


def pool_features(params: Mapping[str, Any], x: jax.Array,
                  flavour: Flavour) -> jax.Array:
  """2048-d average-pool features of a preprocessed ``(N, H, W, 3)`` batch."""
  fid = flavour == 'pytorch_fid'
  for module, kind, convs in ARCH:
    p = params[module]
    if kind == 'stem':
      x = _basic_conv(p, x, convs[0])
      if module in ('Conv2d_2b_3x3', 'Conv2d_4a_3x3'):
        x = _max_pool(x)
    else:
      x = _block(p, x, kind, convs, fid, last=module == 'Mixed_7c')
  return jnp.mean(x, axis=(1, 2))


def features_fn(params: Mapping[str, Any], images: jax.Array,
                flavour: Flavour, resize: bool = True) -> jax.Array:
  """[0, 1] RGB images -> pool features (pure; jit it)."""
  return pool_features(params, preprocess(images, flavour, resize), flavour)
