"""Flags and loading shared by the evaluate and restore CLIs.

Importing this module defines the model-source flags: ``--checkpoint`` (a
training workdir) or ``--model`` + ``--weights`` (converted or PyTorch
weights), with ``--decom`` for RestoRect and ``--channel_order`` /
``--sampler`` for IR-Flow.
"""

from __future__ import annotations

import json

from absl import app
from absl import flags

CHECKPOINT = flags.DEFINE_string(
    'checkpoint', '', 'A training workdir (S2 student, IR-Flow run, or any '
    'registered method; an S1 teacher run evaluates on paired data only).')
WHICH = flags.DEFINE_enum('params', 'ema', ['ema', 'online'],
                          'With --checkpoint: EMA or online weights.')
MODEL = flags.DEFINE_enum(
    'model', '', ['', 'interface', 'irflow', 'irflow_base'],
    'With --weights: which network (interface = deployed RestoRect '
    'student; irflow_base = the time-free discriminative twin).')
WEIGHTS = flags.DEFINE_string(
    'weights', '', 'Converted Flax directory or PyTorch .pth / .npz.')
VARIANT = flags.DEFINE_string('variant', 'default',
                              'Model size with --weights (default, ...).')
MODEL_KWARGS = flags.DEFINE_string('model_kwargs', '{}',
                                   'JSON dict of model overrides.')
DECOM = flags.DEFINE_string(
    'decom', '', 'RestoRect with --weights: DecomNet Dl weights '
    '(Reti-Diff init_low.pth or a converted directory).')
CHANNEL_ORDER = flags.DEFINE_enum(
    'channel_order', 'bgr', ['bgr', 'rgb'],
    'IR-Flow with --weights: the network channel order (weights trained '
    'with the reference code expect bgr).')
SAMPLER = flags.DEFINE_enum('sampler', 'euler',
                            ['euler', 'heun', 'standard_euler'],
                            'IR-Flow sampler with --weights.')
IMPORTS = flags.DEFINE_list(
    'imports', [], 'Modules to import first: they register methods defined '
    'outside the package (restorect_jax.methods.register).')


def load_predictor():
  """The :class:`restorect_jax.inference.Predictor` the flags name."""
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  if bool(CHECKPOINT.value) == bool(WEIGHTS.value):
    raise app.UsageError('Pass exactly one of --checkpoint or --weights.')
  if CHECKPOINT.value:
    return loading.from_workdir(CHECKPOINT.value, which=WHICH.value)
  if not MODEL.value:
    raise app.UsageError('--weights needs --model.')
  try:
    overrides = json.loads(MODEL_KWARGS.value)
  except ValueError as e:
    raise app.UsageError(f'--model_kwargs is not JSON: {e}') from e
  return loading.from_weights(
      MODEL.value, WEIGHTS.value, variant=VARIANT.value,
      overrides=overrides, decom=DECOM.value,
      channel_order=CHANNEL_ORDER.value, sampler=SAMPLER.value)


def output_dir(path: str, flag: str) -> str:
  """Creates the output folder ``path`` (of ``--flag``) or says why not.

  Called before any model is loaded, so a wrong output fails at once.

  Raises:
    NotADirectoryError: ``path`` (or a parent) is a file.
    PermissionError: the folder cannot be written.
  """
  import os  # pylint: disable=g-import-not-at-top
  if os.path.exists(path) and not os.path.isdir(path):
    raise NotADirectoryError(f'--{flag} {path} is a file; expected a folder.')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise type(e)(f'--{flag} {path}: cannot create the folder '
                  f'({e.strerror or e}).') from e
  if not os.access(path, os.W_OK | os.X_OK):
    raise PermissionError(f'--{flag} {path}: the folder is not writable.')
  return path


def start(argv: list[str]) -> None:
  """Common CLI start: no stray arguments, XLA cache on, quiet logs."""
  from restorect_jax.core import runtime  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  from restorect_jax import methods  # pylint: disable=g-import-not-at-top
  methods.import_modules(IMPORTS.value)
