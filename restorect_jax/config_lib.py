"""Config schema shared by configs/*.py: base settings, dataset table, args."""

from __future__ import annotations

import ml_collections

# Dataset folders, relative to ``config.input.data_dir``, laid out as the
# public downloads unpack. (train lq, train gt, eval lq, eval gt)
DATASETS = {
    'lol_v1': ('our485/low', 'our485/high', 'eval15/low', 'eval15/high'),
    'lol_v2_real': ('Train/Low', 'Train/Normal', 'Test/Low', 'Test/Normal'),
    'lol_v2_syn': ('Train/Low', 'Train/Normal', 'Test/Low', 'Test/Normal'),
    # The bundled demo set (restorect_jax.demo_data), built on first use.
    'demo': ('train/low', 'train/high', 'test/low', 'test/high'),
    # Your own paired folders: set input.lq_dir/gt_dir/eval_lq_dir/eval_gt_dir.
    'folder': ('', '', '', ''),
}

# Datasets whose S2 run is 240k steps with an 80k (LOL-v1, LOL-v2-syn) or
# 100k phase 1; the others run 400k steps with a 100k phase 1 (spec §4).
S2_TOTAL = {'lol_v1': 240_000, 'lol_v2_real': 240_000, 'lol_v2_syn': 240_000}
S2_PHASE1 = {'lol_v1': 80_000, 'lol_v2_syn': 80_000}


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'dataset=lol_v1,runlocal'`` into a ConfigDict over defaults."""
  out = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, _, value = item.partition('=')
    if key not in defaults:
      raise ValueError(f'Unknown config arg {key!r}; known: '
                       f'{sorted(defaults)}.')
    default = defaults[key]
    if not value:
      out[key] = True
    elif isinstance(default, bool):
      out[key] = value.lower() in ('1', 'true', 'yes')
    elif isinstance(default, int):
      out[key] = int(value)
    else:
      out[key] = value
  return ml_collections.ConfigDict(out)


def base_config(stage: str, dataset: str) -> ml_collections.ConfigDict:
  """The full-size reference settings common to both stages (spec §4)."""
  if dataset not in DATASETS:
    raise ValueError(f'Unknown dataset {dataset!r}; known: '
                     f'{sorted(DATASETS)}.')
  c = ml_collections.ConfigDict()
  c.stage = stage
  c.seed = 0

  c.model = ml_collections.ConfigDict(dict(
      variant='default',
      layer_norm_type='SpatialChannel',  # paper-vs-code: 'WithBias'
      dtype='float32',
      param_dtype='float32',
  ))

  lq, gt, elq, egt = DATASETS[dataset]
  c.input = ml_collections.ConfigDict(dict(
      dataset=dataset,
      data_dir='',
      lq_dir=lq, gt_dir=gt, eval_lq_dir=elq, eval_gt_dir=egt,
      prefix_match=False,
      patch_size=512,  # crop from the (reflect-padded) image, then stages
      batch_size=8,    # per-step global batch before progressive subsetting
      mini_batch_sizes=(8, 4, 2, 2, 1, 1),
      gt_sizes=(192, 256, 320, 384, 464, 512),
      stage_steps=(92_000, 80_000, 38_000, 33_000, 33_000, 24_000),
  ))

  c.optim = ml_collections.ConfigDict(dict(
      lr=2e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      ema_decay=0.999, grad_clip_norm=0.0))

  c.losses = ml_collections.ConfigDict(dict(
      hvi_weight=0.05,
      decom_weights_s1=(0.05, 0.05, 0.05),
      velocity_weight_phase1=0.1,
      velocity_weight_phase2=0.05,
      kd_weight=1.0,
      kd_temperature=0.15,
      flex_weight=0.5,
      flex_layer_weights=(2.0, 1.41, 1.0),
      flex_timestep=0.2,
  ))

  # Reference behaviour by default; the paper's reading behind each switch.
  c.switches = ml_collections.ConfigDict(dict(
      kd_gradient=False,            # gradient through sampled priors
      flex_target='priors',         # 'decoder': FLEX on decoder features
      learnable_constraints=False,  # train aniso-diffusion s and HVI k
      continuous_time=False,        # t ~ U[0, 1] instead of 4 labels
  ))

  c.rf_steps = 5        # Euler steps when sampling priors (train and eval)
  c.total_steps = 300_000
  c.phase1_steps = 0
  c.log_training_steps = 100
  c.ckpt_steps = 5_000
  c.keep_ckpts = 3
  c.eval_steps = 5_000
  c.eval_max_images = 0  # 0: the whole eval split
  c.decom_init = ml_collections.ConfigDict(dict(low='', high=''))
  c.teacher_init = ''
  return c


def shrink_for_local(c: ml_collections.ConfigDict) -> None:
  """Tiny widths, patches and step counts for CPU smoke runs and tests."""
  c.model.variant = 'demo'
  c.input.patch_size = 32
  c.input.batch_size = 2
  c.input.mini_batch_sizes = (2, 1)
  c.input.gt_sizes = (24, 32)
  c.input.stage_steps = (3, 3)
  c.total_steps = 6
  if c.stage == 's2':
    c.phase1_steps = 3
  c.log_training_steps = 1
  c.ckpt_steps = 2
  c.eval_steps = 0
  c.eval_max_images = 1
  c.rf_steps = 2
  if c.get('schedule', {}).get('kind') == 'cosine_restart':
    c.schedule.periods = (2, 4)


def demo_config(stage: str, *, s1_steps: int = 300, s2_steps: int = 300,
                phase1_steps: int = 100) -> ml_collections.ConfigDict:
  """The CPU demo's settings (``configs/demo.py``, ``restorect_jax.demo``).

  Deviations from the reference, for minutes-long runs: the ``demo`` variant
  (dim 16, one block per level, one ResBlock), 16×16 patches (on XLA:CPU a
  training step of this network costs ~10x its forward: the G backward for
  batch 4 takes 100 / 212 / 869 ms at 16² / 32² / 64²), batch 8, lr
  1e-3 with one cosine cycle (S1) or constant (S2), few steps, and EMA
  decay 0.99 (with 0.999, 300 steps leave the EMA weights 74 % at their
  initial values: 0.999^300 ≈ 0.74).
  """
  c = base_config(stage, 'demo')
  c.model.variant = 'demo'
  c.input.patch_size = 16
  c.input.batch_size = 8
  c.input.mini_batch_sizes = (8,)
  c.input.gt_sizes = (16,)
  c.optim.lr = 1e-3
  c.optim.ema_decay = 0.99
  c.log_training_steps = 25
  c.eval_steps = 0
  c.keep_ckpts = 2
  if stage == 's1':
    c.total_steps = s1_steps
    c.ckpt_steps = 100
    c.input.stage_steps = (s1_steps,)
    c.schedule = dict(kind='cosine_restart', periods=(s1_steps,),
                      restart_weights=(1.0,), eta_mins=(1e-5,))
  else:
    c.total_steps = s2_steps
    c.phase1_steps = phase1_steps
    c.ckpt_steps = 150
    c.input.stage_steps = (s2_steps,)
    c.schedule = dict(kind='s2_steps', phase1_every=10**9, phase1_gamma=0.1,
                      phase2_every=10**9, phase2_gamma=0.5)
  return c
