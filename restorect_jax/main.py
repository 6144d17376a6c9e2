r"""Entry point: ``python -m restorect_jax.main --config CFG --workdir DIR``.

``--mode=train`` trains (resuming from the latest checkpoint in the
workdir); ``--mode=eval`` evaluates the latest checkpoint (the weights the
method evaluates: EMA by default) on the config's eval split with the same
evaluator (``config.evals``) and predictor as training and the evaluate
CLI. ``--imports=pkg.module`` imports modules that register methods defined
outside the package. Override any config value with
``--config.key=value``; the config is locked, so a key that does not exist
is an error. A wrong flag, config key (with the closest existing key) or
step count, an unreadable weight file (``config.decom_init``) or a damaged
checkpoint is one ``error:`` line (exit status 2 for the command line, 1
otherwise; ``--verbosity=1`` shows the traceback). A resumed run whose
latest checkpoint is damaged warns, sets it aside and resumes from the
newest good one.

Multi-process runs (several hosts, or one process per GPU) call
``jax.distributed.initialize()`` first: automatically under Slurm, Open MPI,
multi-host TPU VMs or with ``JAX_COORDINATOR_ADDRESS`` set (plus
``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``), or always with
``--distributed``. Batch sizes in the config are global (README, "Devices,
batch sizes and precision").
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from restorect_jax import cli_errors
from restorect_jax import config_lib
from restorect_jax.core import runtime
from restorect_jax.core import sharding

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py[:args]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, logs and outputs.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                          'Train (and evaluate), or evaluate only.')
_IMPORTS = flags.DEFINE_list(
    'imports', [], 'Modules to import first (they register methods defined '
    'outside the package, restorect_jax.methods.register).')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', None,
    'Call jax.distributed.initialize() (multi-process run). Default: when '
    'the environment describes one (Slurm, Open MPI, TPU pod, '
    'JAX_COORDINATOR_ADDRESS).')


# Config values that count steps: (key, smallest allowed value).
_STEP_COUNTS = (('total_steps', 1), ('rf_steps', 1), ('ckpt_steps', 0),
                ('eval_steps', 0), ('log_training_steps', 0),
                ('keep_ckpts', 1), ('phase1_steps', 0))


def check_step_counts(config) -> None:
  """Refuses step counts below their minimum (``--config.total_steps=0``).

  Raises:
    app.UsageError: naming the first such key.
  """
  for key, least in _STEP_COUNTS:
    value = config.get(key)
    if value is not None and int(value) < least:
      raise app.UsageError(f'--config.{key}={value}: must be >= {least}.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    config = _CONFIG.value
    config.get('total_steps')  # a config file that failed to load raises
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections defers a config file's load error to the first use of
    # the config; its last line says why.
    lines = str(e).strip().splitlines() or [type(e).__name__]
    raise app.UsageError(f'--config: {lines[-1].strip()}') from e
  check_step_counts(config)
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  multi = sharding.initialize_distributed(_DISTRIBUTED.value)
  # Shown by default in multi-process runs (INFO is hidden otherwise).
  log = logging.warning if multi else logging.info
  log('JAX process %d / %d; %d device(s) in all, local: %s',
      jax.process_index(), jax.process_count(), jax.device_count(),
      jax.local_devices())
  # Imported here so --help stays fast.
  from restorect_jax import methods  # pylint: disable=g-import-not-at-top
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  methods.import_modules(_IMPORTS.value)
  workdir = _WORKDIR.value
  if _MODE.value == 'train':
    result = train.train_and_evaluate(config, workdir)
  else:
    result = train.evaluate_checkpoint(config, workdir)
  if result:
    print(json.dumps(result))


if __name__ == '__main__':
  config_lib.add_configs_root(sys.argv)
  flags.mark_flags_as_required(['config', 'workdir'])
  cli_errors.run(main)
