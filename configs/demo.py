r"""The CPU demo: reduced-width RestoRect on the bundled demo set.

``python -m restorect_jax.demo`` (the README's first command) builds its two
stages from this file (S1 → S2 → evaluation → restore). Stage by stage::

  python -m restorect_jax.main --config configs/demo.py:stage=s1 \
    --workdir runs/demo/s1
  python -m restorect_jax.main --config configs/demo.py:stage=s2 \
    --config.teacher_init=runs/demo/s1 \
    --config.input.data_dir=runs/demo/s1/demo_data --workdir runs/demo/s2

Hardware: 2 CPU cores, a few minutes for both stages. Result: the README's
demo table (measured there, with the command and date).

Differs from ``configs/common.py``, for minutes-long runs: the ``demo``
variant (dim 16, one block per level, one ResBlock); 16×16 patches (on
XLA:CPU a training step of this network costs ~10× its forward: the G
backward for batch 4 takes 100 / 212 / 869 ms at 16² / 32² / 64²), batch
8; lr 1e-3 with one cosine cycle (S1) or constant (S2); few steps, most
of them the student's (150 S1, 500 S2); no S2 phase 1 (``phase1_steps=0``:
the flow networks train with G from the first S2 step, and the ~30 s the
phase-1 step took to compile go to phase-2 steps); EMA decay 0.99 (with
0.999, 300 steps leave the EMA weights 74 % at their initial values:
0.999^300 ≈ 0.74); randomly initialised frozen DecomNets (no weights ship
with the package); five crops from each of five natural train photos
(``TRAIN_PHOTOS`` below); the decoded training pairs kept in memory
(``input.cache_mb``) instead of decoded again at every step. The tuning
runs behind these choices are in the notes on issue 16.

Args (``:a=b,c``): ``stage`` (s1, s2), ``s1_steps``, ``s2_steps``,
``phase1_steps``.
"""

from configs import common

# The natural photos of demo_data.TRAIN_PHOTOS: without the stained
# microscopy slide (immunohistochemistry, ground-truth mean 145-178 of 255),
# whose bright tone the student carried over to the test photos (chelsea
# restored 11 % too bright after 600 S2 steps).
TRAIN_PHOTOS = ('astronaut', 'rocket', 'motorcycle-left', 'motorcycle-right',
                'retina')


def get_config(arg=None):
  a = common.parse_arg(arg, stage='s1', s1_steps=150, s2_steps=500,
                       phase1_steps=0)
  c = common.restorect(a.stage, 'demo')
  c.model.variant = 'demo'
  c.input.update(dict(patch_size=16, batch_size=8, mini_batch_sizes=(8,),
                      gt_sizes=(16,), cache_mb=64, demo_crops=5,
                      demo_photos=TRAIN_PHOTOS))
  c.optim.lr = 1e-3
  c.optim.ema_decay = 0.99
  c.log_training_steps = 25
  c.eval_steps = 0
  c.keep_ckpts = 2
  if a.stage == 's1':
    c.total_steps = a.s1_steps
    c.ckpt_steps = 100
    c.schedule = common.Config(dict(
        periods=(a.s1_steps,), restart_weights=(1.0,), eta_mins=(1e-5,)))
  else:
    c.total_steps = a.s2_steps
    c.phase1_steps = a.phase1_steps
    c.ckpt_steps = 150
    c.schedule = common.Config(dict(
        phase1_every=10**9, phase1_gamma=0.1, phase2_every=10**9,
        phase2_gamma=0.5, count_from_one=True))
  c.input.stage_steps = (c.total_steps,)
  return c
