r"""The CPU demo: reduced-width RestoRect on the bundled demo set.

Used by ``python -m restorect_jax.demo`` (S1 → S2 → evaluation → restore),
which the README's first command runs. Also usable stage by stage::

  python -m restorect_jax.main --config configs/demo.py:stage=s1 \
    --workdir runs/demo/s1
  python -m restorect_jax.main --config configs/demo.py:stage=s2 \
    --config.teacher_init=runs/demo/s1 \
    --config.input.data_dir=runs/demo/s1/demo_data --workdir runs/demo/s2

Hardware: 2 CPU cores, about 4 minutes for both stages. Deviations from
the reference, for minutes-long runs: the ``demo`` variant (dim 16, one
block per level, one ResBlock), 16×16 patches, batch 8, lr 1e-3 with a
single cosine cycle, EMA 0.99, few steps, and randomly initialised frozen
DecomNets (no weights ship with the package). Expected result: the README's
demo table (the student well above its degraded input).
"""

from restorect_jax import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, stage='s1', s1_steps=300, s2_steps=300,
                           phase1_steps=100)
  return config_lib.demo_config(a.stage, s1_steps=a.s1_steps,
                                s2_steps=a.s2_steps,
                                phase1_steps=a.phase1_steps)
