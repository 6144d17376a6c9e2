"""The method registry: name → :class:`restorect_jax.methods.base.Method`.

Built in: ``'restorect'`` and ``'irflow'`` (imported on first use). A method
defined elsewhere calls :func:`register` when its module is imported; the
CLIs import such modules with ``--imports=my_pkg.my_method`` (names read
from a checkpoint are only looked up, never imported, since checkpoints
from elsewhere are untrusted input).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

_BUILTIN = {'restorect': 'restorect_jax.methods.restorect.method',
            'irflow': 'restorect_jax.methods.irflow.method'}
_REGISTRY: dict[str, Any] = {}


def register(method: Any) -> Any:
  """Adds ``method`` (an object with the Method members) under its name."""
  name = getattr(method, 'name', None)
  if not isinstance(name, str) or not name:
    raise ValueError(f'A method needs a non-empty str name, got {name!r}.')
  if name in _BUILTIN:
    raise ValueError(f'{name!r} is a built-in method name.')
  _REGISTRY[name] = method
  return method


def get(name: str) -> Any:
  """The method registered as ``name``."""
  if name in _BUILTIN and name not in _REGISTRY:
    _REGISTRY[name] = importlib.import_module(_BUILTIN[name]).METHOD
  if name not in _REGISTRY:
    raise ValueError(
        f'Unknown method {name!r}; known: {", ".join(known())}. A method '
        'defined outside the package is registered by importing its module '
        '(--imports=package.module).')
  return _REGISTRY[name]


def known() -> list[str]:
  return sorted(set(_BUILTIN) | set(_REGISTRY))


def name_of(config: Any) -> str:
  """The method a config trains (``config.method``).

  Configs written before ``method`` existed name only the stage:
  ``'irflow'`` for IR-Flow, ``'s1'`` / ``'s2'`` for RestoRect.
  """
  name = config.get('method')
  if name:
    return name
  return 'irflow' if config.get('stage') == 'irflow' else 'restorect'


def for_config(config: Any) -> Any:
  return get(name_of(config))


def import_modules(modules: Sequence[str]) -> None:
  """Imports user modules that register methods (the CLIs' ``--imports``)."""
  for m in modules:
    if m:
      importlib.import_module(m)
