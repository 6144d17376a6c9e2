r"""Entry point: ``python -m restorect_jax.main --config CFG --workdir DIR``.

``--mode=train`` trains (resuming from the latest checkpoint in the
workdir); ``--mode=eval`` evaluates the latest checkpoint's EMA parameters
on the config's eval split. Override any config value with
``--config.key=value``; the config is locked, so a key that does not exist
is an error.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from restorect_jax import runtime

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py[:args]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, logs and outputs.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                          'Train (and evaluate), or evaluate only.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  if os.environ.get('JAX_COORDINATOR_ADDRESS') or os.environ.get(
      'SLURM_NTASKS', '1') != '1':
    jax.distributed.initialize()
  logging.info('JAX process %d / %d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  # Imported here so --help stays fast.
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  config, workdir = _CONFIG.value, _WORKDIR.value
  if _MODE.value == 'train':
    result = train.train_and_evaluate(config, workdir)
  else:
    result = train.evaluate_checkpoint(config, workdir)
  if result:
    print(json.dumps({k: result[k] for k in ('psnr', 'ssim', 'n')}))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
