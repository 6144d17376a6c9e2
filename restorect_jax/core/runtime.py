"""Process-level setup shared by the CLIs (cache, logging)."""

from __future__ import annotations

import os

from absl import flags
from absl import logging
import jax


def enable_compilation_cache() -> None:
  """XLA's persistent cache: a resumed or repeated run skips recompiling.

  ``$JAX_COMPILATION_CACHE_DIR`` wins; default ``~/.cache/restorect_jax``.
  Programs that compiled in 1 s or more are cached, unless
  ``$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise.
  """
  if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    jax.config.update('jax_compilation_cache_dir', os.path.join(
        os.path.expanduser('~'), '.cache', 'restorect_jax', 'xla'))
  if not os.environ.get('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'):
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def quiet_logging() -> None:
  """WARNING unless ``--verbosity`` was given: Orbax logs every file at INFO."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
