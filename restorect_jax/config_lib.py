"""Loading experiment configs (``configs/*.py``) outside absl flag parsing.

The experiment files import ``configs.common``: the folder holding
``configs/`` must be importable. :func:`add_configs_root` puts it on
``sys.path`` for a config path given on the command line (the CLIs call it
before parsing flags), so commands work from any directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import ml_collections
from ml_collections import config_flags


def _root_of(config_path: str) -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(config_path)))


def add_configs_root(argv: Sequence[str]) -> None:
  """Makes ``configs`` importable for every ``--config`` path in argv."""
  for i, arg in enumerate(argv):
    path = None
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
    if path:
      root = _root_of(path.split(':', 1)[0])
      if root not in sys.path:
        sys.path.insert(0, root)


def load(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of the config file at ``path``."""
  add_configs_root([f'--config={path}'])
  module = config_flags.config_flags._load_source(  # pylint: disable=protected-access
      'restorect_config_' + os.path.splitext(os.path.basename(path))[0],
      path)
  return module.get_config(arg)


def repo_configs(name: str) -> str:
  """Path of ``configs/<name>`` in this checkout (for the demo)."""
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(here, 'configs', name)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: the demo runs from a '
                            'checkout of the repository (configs/ beside '
                            'restorect_jax/).')
  return path
