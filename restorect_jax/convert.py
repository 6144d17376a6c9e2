r"""PyTorch state dict ↔ Flax variables, with strict key accounting.

A Flax parameter path joined with ``.`` is the PyTorch key (the modules name
their children after the state-dict entries), so the mapping needs only
layout rules and a few reference quirks:

* layouts by rank: 4-D conv weights OIHW ↔ HWIO (depthwise (C, 1, 3, 3) ↔
  (3, 3, 1, C) by the same rule), 2-D linear weights (out, in) ↔ (in, out),
  everything else unchanged — so the round trip is bit-exact;
* BasicSR wrappers ``{'params': sd, 'params_ema': sd}`` (EMA by default) and
  Reti-Diff's ``{'state_dict': {'model_R': sd}}``;
* a ``module.`` prefix on every key (``DataParallel`` / DDP checkpoints) is
  stripped;
* IR-Flow's gain-only LayerNorm gains (keys ending in ``.g``): PyTorch
  (1, C, 1, 1) ↔ Flax (C,);
* alias keys of the students: ``{img,rex}_diffusion.model.*`` =
  ``{img,rex}_denoise.*`` and ``{img,rex}_diffusion.condition.*`` =
  ``{img,rex}_condition.*`` (checked equal, then dropped; written back on
  export);
* the RPE ResBlocks shared by both branches, stored by PyTorch under
  ``E_R.k.*`` and ``E_I.k.*`` (checked equal; kept once under ``E_R``);
* ``{img,rex}_diffusion.timesteps_array`` buffers → the ``buffers``
  collection;
* S2 → Interface: the student's ``G.decom.*`` is dropped only when allowed
  (``--allow_unmapped '^G\.decom\.'``, the ``interface`` preset does it).

Any unmapped, missing or mis-shaped key is an error listing all of them,
unless the caller passes an explicit allow pattern.

CLI::

  python -m restorect_jax.convert --model interface --input net_g.pth \
      --output /tmp/flax_ckpt
  python -m restorect_jax.convert --model interface --input /tmp/flax_ckpt \
      --output net_g_roundtrip.npz
  python -m restorect_jax.convert --model irflow --input irflow_derain.pth \
      --output /tmp/irflow_ckpt
"""

from __future__ import annotations

import os
import pickle
import re
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np

ArrayDict = dict[str, np.ndarray]
_COLLECTIONS = ('params', 'buffers')
_ALIAS_RE = re.compile(r'^(img|rex)_diffusion\.(model|condition)\.(.*)$')
_ALIAS_TARGET = {'model': 'denoise', 'condition': 'condition'}
_SHARED_RE = re.compile(r'^(.*\bE_)I(\.\d+\.body\..*)$')
# IR-Flow's gain-only LayerNorm gains, stored (1, C, 1, 1) by PyTorch.
_GAIN_RE = re.compile(r'(^|\.)g$')
_DATA_PARALLEL_PREFIX = 'module.'

# Presets per model: keys allowed to be unmapped (dropped) and flax leaves
# allowed to be missing (kept at their init value).
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    'teacher': {},
    'student': {},
    'interface': {'allow_unmapped': (r'^G\.decom\.',)},
    # The published DecomNet checkpoints lack the anisotropic-diffusion scale.
    'decomnet': {'allow_missing': (r'^anisotropic_diffusion\.s$',)},
    # IR-Flow (spec irflow.md §10): ConditionalUNet and the time-free UNet.
    'irflow': {},
    'irflow_base': {},
}


class ConversionError(ValueError):
  """A state dict that does not match the target model."""


# ----------------------------------------------------------------------------
# Reading and writing state dicts (untrusted input: no pickled objects).
# ----------------------------------------------------------------------------


_NUMERIC_KINDS = frozenset('biuf')
_ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')
_PICKLE_MAGIC = b'\x80'


class StateDict(dict):
  """A flat ``{key: np.ndarray}`` that remembers the file it came from
  (``source``), so a mismatch with the model can name the file."""

  source: str = ''


def _to_numpy(value: Any, key: str) -> np.ndarray:
  if hasattr(value, 'detach'):  # torch.Tensor
    value = value.detach().cpu()
    if str(value.dtype) == 'torch.bfloat16':
      value = value.float()
    value = value.numpy()
  if not isinstance(value, np.ndarray) and not np.isscalar(value):
    raise ConversionError(
        f'State-dict entry {key!r} is a {type(value).__name__}, not a tensor.')
  value = np.asarray(value)
  if value.dtype.kind not in _NUMERIC_KINDS or value.dtype.fields:
    raise ConversionError(
        f'State-dict entry {key!r} has dtype {value.dtype}; expected numbers.')
  return value


def unwrap_state_dict(obj: Mapping[str, Any], *, prefer: str = 'params_ema'
                      ) -> ArrayDict:
  """Unwraps BasicSR / Reti-Diff checkpoint containers into a flat dict.

  Args:
    obj: the loaded object: a flat state dict, ``{'params', 'params_ema'}``
      (BasicSR) or ``{'state_dict': {'model_R': ...}}`` (Reti-Diff).
    prefer: which BasicSR entry to use when both exist.

  Returns:
    Flat ``{key: np.ndarray}``.
  """
  if not isinstance(obj, Mapping):
    raise ConversionError(
        f'Expected a state dict (a mapping), got {type(obj).__name__}.')
  if prefer in obj and isinstance(obj[prefer], Mapping):
    obj = obj[prefer]
  elif 'params' in obj and isinstance(obj['params'], Mapping):
    obj = obj['params']
  elif 'state_dict' in obj and isinstance(obj['state_dict'], Mapping):
    inner = obj['state_dict']
    obj = inner['model_R'] if 'model_R' in inner else inner
  sd = {str(k): _to_numpy(v, str(k)) for k, v in obj.items()}
  return strip_data_parallel_prefix(sd)


def strip_data_parallel_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
  """Drops the ``module.`` prefix when every key has it (DataParallel/DDP)."""
  p = _DATA_PARALLEL_PREFIX
  while sd and all(k.startswith(p) for k in sd):
    sd = {k[len(p):]: v for k, v in sd.items()}
  return dict(sd)


def _first_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return f'{type(e).__name__}: {lines[0][:300]}' if lines else (
      type(e).__name__)


def _torch_refusal(e: BaseException) -> str:
  """Why ``torch.load(weights_only=True)`` refused a file, in a few words
  (never torch's advice to retry with ``weights_only=False``)."""
  for line in str(e).splitlines():
    line = re.sub(r'^.*WeightsUnpickler error:', '', line).strip()
    if re.search(r'unsupported|not an allowed global', line, re.I):
      return re.split(r'\.(\s|$)', line)[0][:200]
  return 'an object that is not a tensor'


def _read_npz(path: str, head: bytes) -> dict[str, np.ndarray]:
  if head.startswith(_PICKLE_MAGIC):
    raise ConversionError(
        f'{path}: refused: a Python pickle, not an .npz archive (pickles can '
        'run code; expected a zip of .npy arrays, as numpy.savez writes).')
  if not head.startswith(_ZIP_MAGIC):
    raise ConversionError(
        f'{path}: not an .npz archive (expected a zip of .npy arrays, as '
        f'numpy.savez writes; the file starts with {head[:8]!r}).')
  try:
    with np.load(path, allow_pickle=False) as z:
      out = {}
      for k in z.files:
        try:
          out[k] = z[k]
        except ValueError as e:
          raise ConversionError(
              f'{path}: refused: entry {k!r} is an object array (pickled '
              'Python objects can run code; expected numeric arrays).') from e
      return out
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    if isinstance(e, ConversionError):
      raise
    raise ConversionError(f'{path}: cannot be read as .npz '
                          f'({_first_line(e)}).') from e


def _read_pth(path: str, head: bytes) -> Any:
  if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
    raise ConversionError(
        f'{path}: not a PyTorch checkpoint (expected a file written by '
        f'torch.save; it starts with {head[:8]!r}).')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError(
        f'Reading {path} needs PyTorch (pip install "restorect_jax[torch]")'
        ', or convert it to .npz of name → array first.') from e
  try:
    with warnings.catch_warnings():
      # torch warns about pickle protocols before refusing hostile files.
      warnings.simplefilter('ignore', UserWarning)
      return torch.load(path, map_location='cpu', weights_only=True)
  except pickle.UnpicklingError as e:
    raise ConversionError(
        f'{path}: refused: it holds pickled Python objects other than '
        'tensors, which could run code (torch.load with weights_only=True '
        f'rejected it: {_torch_refusal(e)}).') from e
  except Exception as e:  # torch raises many types for damaged files.
    raise ConversionError(
        f'{path}: cannot be read as a PyTorch checkpoint with '
        f'weights_only=True ({_first_line(e)}).') from e


def load_state_dict(path: str, *, prefer: str = 'params_ema') -> StateDict:
  """Loads a PyTorch state dict from ``.pth``/``.pt`` (torch) or ``.npz``.

  ``.pth`` files are read with ``torch.load(weights_only=True)`` and ``.npz``
  with ``allow_pickle=False``: a file holding pickled objects is refused
  without running anything. The file's first bytes are checked first, so an
  empty, text or pickle file gets an error saying what it is.

  Returns:
    The flat state dict; its ``source`` is ``path``.

  Raises:
    FileNotFoundError: no such file.
    ConversionError: unreadable, hostile or non-tensor content (the message
      starts with the path).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No state-dict file at {path!r}.')
  with open(path, 'rb') as f:
    head = f.read(16)
  kind = 'an .npz archive' if path.endswith('.npz') else (
      'a PyTorch state dict')
  if not head:
    raise ConversionError(f'{path}: the file is empty (expected {kind}).')
  obj = _read_npz(path, head) if path.endswith('.npz') else _read_pth(
      path, head)
  try:
    sd = StateDict(unwrap_state_dict(obj, prefer=prefer))
  except ConversionError as e:
    raise ConversionError(f'{path}: {e}') from e
  sd.source = path
  return sd


def save_state_dict(sd: Mapping[str, np.ndarray], path: str, *,
                    basicsr_wrap: bool = False) -> None:
  """Writes a PyTorch-named state dict as ``.npz`` or ``.pth`` (atomically)."""
  d = os.path.dirname(os.path.abspath(path))
  os.makedirs(d, exist_ok=True)
  tmp = os.path.join(d, f'.{os.path.basename(path)}.{uuid.uuid4().hex[:12]}'
                     '.tmp')
  # 0o666 minus the umask, as open(path, 'w') gives (mkstemp gives 0o600).
  os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
  try:
    if path.endswith('.npz'):
      with open(tmp, 'wb') as f:
        np.savez(f, **sd)
    else:
      try:
        import torch  # pylint: disable=g-import-not-at-top
      except ImportError as e:
        raise ConversionError(
            'Writing .pth needs PyTorch; write .npz instead.') from e
      tsd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
             sd.items()}
      torch.save({'params': tsd, 'params_ema': tsd} if basicsr_wrap else tsd,
                 tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# ----------------------------------------------------------------------------
# Layout rules and key mapping.
# ----------------------------------------------------------------------------


def _is_gain(key: str | None) -> bool:
  return key is not None and _GAIN_RE.search(key) is not None


def torch_to_flax_array(a: np.ndarray, key: str | None = None) -> np.ndarray:
  """PyTorch layout → Flax layout (by rank; ``key`` enables the gain rule)."""
  if (_is_gain(key) and a.ndim == 4 and
      a.shape[0] == a.shape[2] == a.shape[3] == 1):
    return np.ascontiguousarray(a.reshape(a.shape[1]))  # (1,C,1,1) → (C,)
  if a.ndim == 4:
    return np.ascontiguousarray(a.transpose(2, 3, 1, 0))
  if a.ndim == 2:
    return np.ascontiguousarray(a.T)
  return a


def flax_to_torch_array(a: np.ndarray, key: str | None = None) -> np.ndarray:
  """Flax layout → PyTorch layout (inverse of :func:`torch_to_flax_array`)."""
  if _is_gain(key) and a.ndim == 1:
    return np.ascontiguousarray(a.reshape(1, a.shape[0], 1, 1))
  if a.ndim == 4:
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
  if a.ndim == 2:
    return np.ascontiguousarray(a.T)
  return a


def flatten_variables(variables: Mapping[str, Any]
                      ) -> dict[str, tuple[tuple[str, ...], Any]]:
  """``{torch_key: (flax_path incl. collection, leaf)}`` for params/buffers."""
  out = {}
  for col in _COLLECTIONS:
    if col not in variables:
      continue
    flat = jax.tree_util.tree_flatten_with_path(variables[col])[0]
    for path, leaf in flat:
      names = tuple(p.key for p in path)
      out['.'.join(names)] = ((col,) + names, leaf)
  return out


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _matches(key: str, patterns: Iterable[str]) -> bool:
  return any(re.search(p, key) for p in patterns)


def _fold_duplicates(sd: ArrayDict, targets: set[str]
                     ) -> tuple[ArrayDict, list[str]]:
  """Drops alias and shared-ResBlock duplicates after checking equality."""
  out, errors = dict(sd), []
  for key, value in sd.items():
    canonical = None
    m = _ALIAS_RE.match(key)
    if m:
      canonical = f'{m[1]}_{_ALIAS_TARGET[m[2]]}.{m[3]}'
    else:
      m = _SHARED_RE.match(key)
      if m and key not in targets and f'{m[1]}R{m[2]}' in targets:
        canonical = f'{m[1]}R{m[2]}'
    if canonical is None:
      continue
    del out[key]
    if canonical not in sd:
      out[canonical] = value  # alias-only checkpoint: take it as canonical.
    elif (sd[canonical].shape != value.shape or
          not np.array_equal(sd[canonical], value)):
      errors.append(f'{key} differs from its tied copy {canonical}')
  return out, errors


def torch_to_flax(sd: Mapping[str, np.ndarray], template: Mapping[str, Any],
                  *, allow_unmapped: Iterable[str] = (),
                  allow_missing: Iterable[str] = ()) -> dict[str, Any]:
  """Converts a PyTorch-named state dict into Flax variables.

  Args:
    sd: flat ``{key: array}`` in PyTorch layout.
    template: the model's variables (concrete, or abstract from
      ``jax.eval_shape``) giving the expected names and shapes. Leaves that
      are allowed to be missing are taken from it (so it must be concrete
      for them).
    allow_unmapped: regexes of state-dict keys that may be dropped.
    allow_missing: regexes of Flax keys (dotted) that may be absent.

  Returns:
    ``{'params': ..., ['buffers': ...]}`` of NumPy arrays.

  Raises:
    ConversionError: listing every unmapped, missing, mis-shaped or
      inconsistent key.
  """
  sd_in = sd
  targets = flatten_variables(template)
  sd, errors = _fold_duplicates(
      {k: np.asarray(v) for k, v in sd.items()}, set(targets))
  out: dict[str, Any] = {}
  unmapped, misshaped = [], []
  for key, value in sd.items():
    if key not in targets:
      if not _matches(key, allow_unmapped):
        unmapped.append(key)
      continue
    path, leaf = targets[key]
    value = torch_to_flax_array(value, key)
    if tuple(value.shape) != tuple(leaf.shape):
      misshaped.append(
          f'{key}: got {tuple(value.shape)} (Flax layout), expected '
          f'{tuple(leaf.shape)}')
      continue
    _set_path(out, path, value)
  missing = []
  for key, (path, leaf) in targets.items():
    if key in sd:
      continue
    if _matches(key, allow_missing) and hasattr(leaf, '__array__'):
      _set_path(out, path, np.asarray(leaf))
    else:
      missing.append(key)
  problems, counts = [], []
  for title, items in (('unmapped (in the checkpoint, not in the model)',
                        unmapped),
                       ('missing (in the model, not in the checkpoint)',
                        missing),
                       ('mis-shaped', misshaped),
                       ('inconsistent duplicates', errors)):
    if items:
      counts.append(f'{len(items)} {title.split(" (")[0]}')
      problems.append(f'{len(items)} {title}:\n  ' + '\n  '.join(
          sorted(items)))
  if problems:
    source = getattr(sd_in, 'source', '')
    raise ConversionError(
        f'{source + ": " if source else ""}state dict does not match the '
        f'model ({", ".join(counts)} keys; listed below; the wrong --model '
        'or --variant?).\n' + '\n'.join(problems))
  return out


def flax_to_torch(variables: Mapping[str, Any], *,
                  aliases: bool = True) -> ArrayDict:
  """Converts Flax variables into a PyTorch-named state dict.

  Writes the reference's duplicates too: shared RPE ResBlocks under both
  ``E_R`` and ``E_I`` and, for students, the ``*_diffusion.model`` /
  ``*_diffusion.condition`` aliases (``aliases=False`` omits the latter).
  """
  sd = {}
  for key, (_, leaf) in flatten_variables(variables).items():
    sd[key] = flax_to_torch_array(np.asarray(leaf), key)
  for key, value in list(sd.items()):
    m = re.match(r'^(.*\bE_)R(\.\d+\.body\..*)$', key)
    if m:
      sd[f'{m[1]}I{m[2]}'] = value
  if aliases:
    for key, value in list(sd.items()):
      m = re.match(r'^(img|rex)_(denoise|condition)\.(.*)$', key)
      if m:
        kind = 'model' if m[2] == 'denoise' else 'condition'
        sd[f'{m[1]}_diffusion.{kind}.{m[3]}'] = value
  return sd


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def template_for(model_name: str, variant: str = 'default',
                 overrides: Mapping[str, Any] | None = None,
                 concrete: bool = False) -> dict[str, Any]:
  """Variables (abstract unless ``concrete``) of a registry model."""
  from restorect_jax.models import Model  # pylint: disable=g-import-not-at-top
  from restorect_jax.models.rgformer import PRIOR_DIM  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  model = Model(model_name, variant, **dict(overrides or {}))
  img = jnp.zeros((1, 32, 32, 3), jnp.float32)
  rex = jnp.zeros((1, 32, 32, 4), jnp.float32)
  z = jnp.zeros((1, PRIOR_DIM), jnp.float32)
  if model_name in ('irflow', 'irflow_base'):
    side = 2 ** model.depth
    img = jnp.zeros((1, side, side, model.in_nc), jnp.float32)
  args = {'teacher': (img, img, rex, rex), 'student': (img, rex, z, z),
          'interface': (img, rex, z, z), 'decomnet': (img,),
          'irflow': (img, jnp.zeros((1,), jnp.int32)),
          'irflow_base': (img,)}[model_name]
  init = lambda: model.init(jax.random.key(0), *args)
  variables = init() if concrete else jax.eval_shape(init)
  return jax.tree.map(lambda x: x, dict(variables))


def run(argv: list[str] | None = None) -> int:
  """Converts as the command line ``argv`` says; errors propagate."""
  return _convert(_parse(argv))


def main(argv: list[str] | None = None) -> int:
  """Entry point of ``python -m restorect_jax.convert``.

  A bad input (unreadable, hostile or mismatched weights, an existing
  output without ``--overwrite``) ends in one ``error:`` line and exit
  status 1 (2 for a wrong command line); ``--verbosity=1`` shows the
  traceback.
  """
  from restorect_jax import cli_errors  # pylint: disable=g-import-not-at-top
  args = _parse(argv)
  return cli_errors.guard(_convert, verbose=lambda: args.verbosity >= 1)(
      args)


def _parse(argv: list[str] | None) -> Any:
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog='python -m restorect_jax.convert',
      description=(
          'Convert RestoRect / IR-Flow weights between PyTorch state '
          'dicts (.pth with torch installed, or .npz of name -> array) and '
          'Flax variables (an Orbax checkpoint directory). The direction '
          'follows --input: a file is PyTorch, a directory is Flax.'))
  parser.add_argument('--model', required=True, choices=sorted(PRESETS),
                      help='Which network the weights belong to.')
  parser.add_argument('--input', required=True,
                      help='.pth/.pt/.npz state dict, or a Flax directory.')
  parser.add_argument('--output', required=True,
                      help='Flax directory, or .npz/.pth for PyTorch.')
  parser.add_argument('--variant', default='default',
                      help='Model size variant: default, tiny, demo '
                      '(RestoRect); default, small, tiny (IR-Flow).')
  parser.add_argument('--model_kwargs', default='{}',
                      help='JSON dict of model overrides, e.g. '
                      '\'{"layer_norm_type": "WithBias"}\'.')
  parser.add_argument('--prefer', default='params_ema',
                      choices=('params_ema', 'params'),
                      help='BasicSR entry to read when both exist.')
  parser.add_argument('--allow_unmapped', action='append', default=[],
                      help='Regex of checkpoint keys that may be dropped '
                      '(repeatable; added to the model preset).')
  parser.add_argument('--allow_missing', action='append', default=[],
                      help='Regex of model keys that may be absent and keep '
                      'their init value (repeatable).')
  parser.add_argument('--basicsr_wrap', action='store_true',
                      help='Write .pth as {"params": sd, "params_ema": sd}.')
  parser.add_argument('--overwrite', action='store_true',
                      help='Replace an existing output (file, or a weights '
                      'directory written by this converter).')
  parser.add_argument('--verbosity', type=int, default=0,
                      help='1 or more: show tracebacks of errors.')
  return parser.parse_args(argv)


def _convert(args: Any) -> int:
  """The conversion :func:`run` parsed ``args`` for."""
  import json  # pylint: disable=g-import-not-at-top
  from absl import app  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import checkpoint_io  # pylint: disable=g-import-not-at-top
  if os.path.exists(args.output) and not args.overwrite:
    raise app.UsageError(f'{args.output} exists; pass --overwrite to '
                         'replace it.')
  if os.path.abspath(args.output) == os.path.abspath(args.input):
    raise app.UsageError(f'--output {args.output} is the input.')
  try:
    overrides = json.loads(args.model_kwargs)
  except ValueError as e:
    raise app.UsageError(f'--model_kwargs is not JSON: {e}') from e
  preset = PRESETS[args.model]
  if os.path.isdir(args.input):
    variables = checkpoint_io.load_variables(args.input)
    sd = flax_to_torch(variables)
    save_state_dict(sd, args.output, basicsr_wrap=args.basicsr_wrap)
    print(f'Wrote {len(sd)} PyTorch tensors to {args.output}')
    return 0
  sd = load_state_dict(args.input, prefer=args.prefer)
  allow_missing = tuple(preset.get('allow_missing', ())) + tuple(
      args.allow_missing)
  template = template_for(args.model, args.variant, overrides,
                          concrete=bool(allow_missing))
  variables = torch_to_flax(
      sd, template,
      allow_unmapped=tuple(preset.get('allow_unmapped', ())) + tuple(
          args.allow_unmapped),
      allow_missing=allow_missing)
  checkpoint_io.save_variables(variables, args.output, metadata={
      'model': args.model, 'variant': args.variant, 'overrides': overrides,
      'source': os.path.abspath(args.input)}, overwrite=args.overwrite)
  n = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(
      variables['params']))
  print(f'Wrote Flax variables ({n:,} parameters) to {args.output}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
