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
      # A prepared TFDS dataset (restorect_jax.datasets) instead of the
      # folders above when tfds.name is set, e.g. 'uieb/t90'.
      tfds=ml_collections.ConfigDict(dict(
          name='', data_dir='', train_split='train', eval_split='test')),
      # Joint bicubic resize (input_pipeline.RESIZE_MODES): 'square' for
      # UIEB/LSUI (512 train, 256 eval), 'multiple_of_32' for SICE, SID,
      # BAID, FiveK; 'none' for the LOL sets.
      resize='none', resize_size=512,
      eval_resize='none', eval_resize_size=256,
      num_workers=0,   # grain worker processes (same stream as 0)
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
  c.eval_crop_border = 0  # the 'standard' protocol during training
  c.decom_init = ml_collections.ConfigDict(dict(low='', high=''))
  c.teacher_init = ''
  add_parallelism(c)
  return c


def add_parallelism(c: ml_collections.ConfigDict) -> None:
  """Mesh, precision and memory keys (restorect_jax.sharding, README).

  ``input.batch_size`` and ``input.mini_batch_sizes`` are global (all
  devices together) and must divide by the mesh's device count.
  """
  c.mesh = ml_collections.ConfigDict(dict(
      num_devices=0,          # 0: every device; N: the first N (1 process)
      fsdp=1,                 # >1: mesh (data, fsdp), big params split
      fsdp_min_size=2 ** 18,  # smallest param (elements) FSDP splits
  ))
  # The training step's activation/matmul dtype: 'float32' or 'bfloat16'
  # (params, gradients, optimizer state and loss reductions stay float32;
  # evaluation computes in config.model.dtype).
  c.compute_dtype = 'float32'
  c.remat = False  # recompute transformer / ResBlock activations in backward


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
  c.mesh.num_devices = 1  # batches of 2 then 1 do not split over devices
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


# ----------------------------------------------------------------------------
# IR-Flow (spec irflow.md §6–§7).
# ----------------------------------------------------------------------------

# Per task: folders relative to input.data_dir (train lq, train gt, eval lq,
# eval gt; the reference configs' layouts), lr, milestones (×0.5), MSC
# weight, the test sweep of Euler steps, and the σ of synthesised Gaussian
# noise on [0, 1] data (denoising: lq = gt + σ·N(0, 1), fresh every step).
IRFLOW_TASKS = {
    'derain': dict(
        folders=('trainL/LQ', 'trainL/GT', 'testL/LQ', 'testL/GT'),
        lr=1e-4, milestones=(200_000, 400_000, 600_000), msc_weight=0.3,
        sweep=(1, 2, 3, 4, 5, 10, 20, 50), noise_sigma=0.0),
    'raindrop': dict(
        # The public zips: train/{data,gt}, test_a/{data,gt}; N_rain.png
        # pairs with N_clean.png (input.prefix_match).
        folders=('train/data', 'train/gt', 'test_a/data', 'test_a/gt'),
        lr=1e-4, milestones=(200_000, 400_000, 600_000), msc_weight=0.3,
        sweep=(1, 2, 3, 4, 5, 10, 20, 50), noise_sigma=0.0),
    'denoise': dict(
        folders=('train/DFWB', 'train/DFWB', 'test/CBSD68', 'test/CBSD68'),
        lr=1e-4, milestones=(200_000, 400_000, 600_000), msc_weight=0.3,
        sweep=(1, 2, 3, 4, 5, 10, 50), noise_sigma=25.0 / 255.0),
    'dehaze': dict(
        folders=('train/hazy', 'train/GT', 'test/hazy', 'test/GT'),
        lr=1e-4, milestones=(200_000, 400_000, 600_000), msc_weight=0.3,
        sweep=(1, 2, 3, 4, 5, 10, 20, 50), noise_sigma=0.0),
    'deblur': dict(
        folders=('train/input_crops', 'train/target_crops', 'test/input',
                 'test/target'),
        lr=2e-4, milestones=(100_000, 400_000, 600_000), msc_weight=0.2,
        sweep=(1, 2, 3, 4, 5, 10, 50), noise_sigma=0.0),
    # The reference pairs x4-smaller LR crops with HR crops and has no
    # upsampler: the LR images must be pre-upsampled to HR size.
    'sr': dict(
        folders=('DIV2K_train_LR_unknown/X4', 'DIV2K_train_HR',
                 'DIV2K_valid_LR_unknown/X4', 'DIV2K_valid_HR'),
        lr=2e-4, milestones=(100_000, 200_000, 400_000, 600_000),
        msc_weight=0.3, sweep=(1, 2, 3, 4, 5, 10, 20, 50), noise_sigma=0.0),
    # CPU demo: denoising (σ 25) on the bundled demo photos' clean halves.
    'demo': dict(
        folders=('train/high', 'train/high', 'test/high', 'test/high'),
        lr=1e-3, milestones=(), msc_weight=0.3, sweep=(1, 2, 4),
        noise_sigma=25.0 / 255.0),
}


def irflow_config(task: str) -> ml_collections.ConfigDict:
  """Full-size IR-Flow settings of a task (spec irflow.md §6–§7)."""
  if task not in IRFLOW_TASKS:
    raise ValueError(f'Unknown IR-Flow task {task!r}; known: '
                     f'{sorted(IRFLOW_TASKS)}.')
  t = IRFLOW_TASKS[task]
  c = base_config('irflow', 'folder' if task != 'demo' else 'demo')
  for key in ('losses', 'switches', 'decom_init', 'teacher_init',
              'phase1_steps'):
    del c[key]
  del c.optim['ema_decay']
  c.model = ml_collections.ConfigDict(dict(
      name='irflow', variant='default', dtype='float32',
      param_dtype='float32'))
  lq, gt, elq, egt = t['folders']
  c.input.update(dict(
      dataset=task if task != 'demo' else 'demo', lq_dir=lq, gt_dir=gt,
      prefix_match=task == 'raindrop',
      eval_lq_dir=elq, eval_gt_dir=egt, patch_size=256, batch_size=8,
      mini_batch_sizes=(8,), gt_sizes=(256,), stage_steps=(700_000,)))
  c.optim.update(dict(lr=t['lr'], b1=0.9, b2=0.99, eps=1e-8,
                      weight_decay=0.0))
  c.schedule = dict(kind='multistep', milestones=t['milestones'], gamma=0.5)
  c.irflow = ml_collections.ConfigDict(dict(
      task=task,
      cumulative=True,          # isXT: target x_t - x_gt; False: x_lq - x_gt
      base=False,               # time-free discriminative baseline (UNet)
      loss_kind='l2',           # l1 | l2 | sl1 | ssim
      match_weight=1.0,
      msc_mode='reference',     # no gradient, as released; 'paper' | 'off'
      msc_weight=t['msc_weight'],
      noise_sigma=t['noise_sigma'],
      channel_order='bgr',      # the reference feeds B, G, R; 'rgb'
      sampler='euler',          # euler (Euler-1) | heun | standard_euler
      eval_params='ema',        # the reference evaluates online weights
      ema=dict(beta=0.995, update_every=10, update_after_step=100),
  ))
  c.rf_steps = 1               # train-time validation: 1 step (reference)
  c.rf_sweep = t['sweep']
  c.eval_crop_border = 1       # IR-Flow's test.py metric flavour
  c.total_steps = 700_000
  c.ckpt_steps = 10_000
  c.eval_steps = 10_000
  c.log_training_steps = 100
  return c


def irflow_demo(c: ml_collections.ConfigDict, steps: int = 300) -> None:
  """CPU demo sizes: the ``small`` UNet (nf 16), 32² patches, batch 8.

  Deviations from the reference for a minutes-long run: nf 16, 32×32
  patches, lr 1e-3 without decay, EMA warm-up shortened (update every step
  after step 20), MSC off (it only changes the logged loss in reference mode
  and costs up to 10 extra forward passes), evaluation on 4 images.
  """
  c.model.variant = 'small'
  c.input.patch_size = 32
  c.input.batch_size = 8
  c.input.mini_batch_sizes = (8,)
  c.input.gt_sizes = (32,)
  c.input.stage_steps = (steps,)
  c.total_steps = steps
  c.irflow.msc_mode = 'off'
  c.irflow.ema = dict(beta=0.99, update_every=1, update_after_step=20)
  c.log_training_steps = 25
  c.ckpt_steps = 100
  c.eval_steps = 0
  c.eval_max_images = 4
  c.keep_ckpts = 2


def shrink_irflow_for_local(c: ml_collections.ConfigDict) -> None:
  """Tiny IR-Flow smoke-run settings (nf 4, 32² patches, 4 steps)."""
  c.model.variant = 'tiny'
  c.input.patch_size = 32
  c.input.batch_size = 2
  c.input.mini_batch_sizes = (2,)
  c.input.gt_sizes = (32,)
  c.input.stage_steps = (4,)
  c.total_steps = 4
  c.log_training_steps = 1
  c.ckpt_steps = 2
  c.eval_steps = 0
  c.eval_max_images = 1
  c.irflow.ema = dict(beta=0.995, update_every=1, update_after_step=1)
  c.mesh.num_devices = 1  # a batch of 2 does not split over 8 devices
