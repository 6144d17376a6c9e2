"""Test-wide setup: 8 fake CPU devices and float32 matmuls, before JAX loads."""

import atexit
import os
import shutil
import tempfile

# The classic XLA:CPU emitters compile the suite's tiny networks faster
# (a tiny S1 test: 77 -> 58 s from an empty cache; the suite 30 -> 24 min);
# outputs agree to float rounding, inside every parity tolerance (two
# programs no longer fuse alike: train_test's switch checks compare
# gradients to float32 rounding, not bit for bit).
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8 '
                      '--xla_cpu_use_fusion_emitters=false')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# One XLA compilation cache for the session and the CLIs it starts: the
# kill-and-resume and CLI tests compile the same programs several times.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(),
                                   'restorect_jax_test_xla_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')
# Everything else a test (or a CLI it starts) writes through tempfile goes
# into one folder per process, removed at exit: many tests make
# mkdtemp() workdirs and leave them.
_SCRATCH = tempfile.mkdtemp(prefix='restorect_jax_tests_')
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
tempfile.tempdir = _SCRATCH
os.environ['TMPDIR'] = _SCRATCH

import jax  # noqa: E402  pylint: disable=g-import-not-at-top

jax.config.update('jax_default_matmul_precision', 'float32')
