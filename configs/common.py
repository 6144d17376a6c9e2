"""Shared defaults of every experiment config, and the one runlocal shrink.

Each experiment file (``configs/*.py``) starts from :func:`restorect` or
:func:`irflow` and spells out what it changes. Reference hyper-parameters
(spec restorect.md §4, irflow.md §6–§7) are the defaults; the paper's
readings sit behind named switches (README, "Reference vs paper").
"""

from __future__ import annotations

import ml_collections

Config = ml_collections.ConfigDict


def parse_arg(arg: str | None, **defaults) -> Config:
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
  return Config(out)


def base(method: str, dataset: str) -> Config:
  """The keys every method's config has: data, loop, evaluation, devices."""
  c = Config()
  c.method = method
  c.input = _input(dataset)
  _run(c)
  return c


def _input(dataset: str) -> Config:
  """Data keys: a registry dataset, your own folders, or a TFDS dataset."""
  return Config(dict(
      # A name in restorect_jax.datasets (laid out as the public download
      # under data_dir), or 'folder' with the four *_dir keys below.
      dataset=dataset,
      data_dir='',
      lq_dir='', gt_dir='', eval_lq_dir='', eval_gt_dir='',
      prefix_match=False,  # 'folder': pair by the name part before '_'
      patch_size=512,  # crop from the (reflect-padded) image, then stages
      batch_size=8,    # per-step global batch before progressive subsetting
      mini_batch_sizes=(8, 4, 2, 2, 1, 1),
      gt_sizes=(192, 256, 320, 384, 464, 512),
      stage_steps=(92_000, 80_000, 38_000, 33_000, 33_000, 24_000),
      # A prepared TFDS dataset (restorect_jax.datasets) instead of folders
      # when tfds.name is set, e.g. 'uieb/t90'.
      tfds=Config(dict(name='', data_dir='', train_split='train',
                       eval_split='test')),
      # Joint bicubic resize (input_pipeline.RESIZE_MODES): 'square' for
      # UIEB/LSUI (512 train, 256 eval), 'multiple_of_32' for SICE, SID,
      # BAID, FiveK; 'none' for the LOL sets.
      resize='none', resize_size=512,
      eval_resize='none', eval_resize_size=256,
      num_workers=0,   # grain worker processes (same stream as 0)
      cache_mb=0,      # decoded train records kept in memory, MiB/process
      # The 'demo' sets (data/demo_data.py): crops per train photo, and
      # which train photos (empty: all of demo_data.TRAIN_PHOTOS).
      demo_crops=4, demo_photos=(),
  ))


def _run(c: Config) -> None:
  """Loop, logging, checkpoint, evaluation and parallelism keys."""
  c.seed = 0
  c.total_steps = 300_000
  c.log_training_steps = 100
  c.ckpt_steps = 5_000
  c.keep_ckpts = 3
  c.eval_steps = 5_000
  c.eval_last = True  # also evaluate after the last step
  # The evaluator of training and --mode=eval (restorect_jax.evaluation):
  # the protocols it reports, images (0: all), grid images kept, and the σ
  # of synthetic noise for denoising sets (input = gt + σ·N(0, 1), seeded
  # by image name).
  c.evals = Config(dict(protocols=('standard',), max_images=0,
                        keep_outputs=2, noise_sigma=0.0))
  # Mesh, precision and memory (restorect_jax.core.sharding, README).
  # input.batch_size and input.mini_batch_sizes are global (all devices)
  # and must divide by the mesh's device count.
  c.mesh = Config(dict(
      num_devices=0,          # 0: every device; N: the first N (1 process)
      fsdp=1,                 # >1: mesh (data, fsdp), big params split
      fsdp_min_size=2 ** 18,  # smallest param (elements) FSDP splits
  ))
  # The training step's activation/matmul dtype: 'float32' or 'bfloat16'
  # (params, gradients, optimizer state and loss reductions stay float32;
  # evaluation computes in config.model.dtype).
  c.compute_dtype = 'float32'
  c.remat = False  # recompute transformer / ResBlock activations in backward


def restorect(stage: str, dataset: str) -> Config:
  """RestoRect's full-size reference settings, both stages (spec §4)."""
  c = base('restorect', dataset)
  c.stage = stage
  c.model = Config(dict(
      variant='default',
      layer_norm_type='SpatialChannel',  # paper-vs-code: 'WithBias'
      # Depthwise 3x3 conv: 'auto' (CPU: shifted_vjp; GPU/TPU: shifted,
      # unmeasured there), 'shifted', 'shifted_vjp', 'lax' (models/layers).
      depthwise='auto',
      dtype='float32',
      param_dtype='float32',
  ))
  c.optim = Config(dict(lr=2e-4, b1=0.9, b2=0.999, eps=1e-8,
                        weight_decay=0.0, ema_decay=0.999,
                        grad_clip_norm=0.0))
  c.losses = Config(dict(
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
  c.switches = Config(dict(
      kd_gradient=False,            # gradient through sampled priors
      flex_target='priors',         # 'decoder': FLEX on decoder features
      learnable_constraints=False,  # train aniso-diffusion s and HVI k
      continuous_time=False,        # t ~ U[0, 1] instead of 4 labels
  ))
  c.rf_steps = 5        # Euler steps when sampling priors (train and eval)
  c.phase1_steps = 0
  c.decom_init = Config(dict(low='', high=''))
  c.teacher_init = ''
  return c


def irflow(dataset: str) -> Config:
  """IR-Flow's full-size reference settings (spec irflow.md §6–§7)."""
  c = base('irflow', dataset)
  c.stage = 'irflow'
  c.model = Config(dict(
      variant='default',
      attention='folded',  # linear attention: 'folded' | 'reference'
      dtype='float32',
      param_dtype='float32'))
  c.input.update(dict(patch_size=256, batch_size=8, mini_batch_sizes=(8,),
                      gt_sizes=(256,), stage_steps=(700_000,)))
  c.optim = Config(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8,
                        weight_decay=0.0, grad_clip_norm=0.0))
  c.schedule = Config(dict(milestones=(200_000, 400_000, 600_000),
                           gamma=0.5))
  c.irflow = Config(dict(
      cumulative=True,          # isXT: target x_t - x_gt; False: x_lq - x_gt
      base=False,               # time-free discriminative baseline (UNet)
      loss_kind='l2',           # l1 | l2 | sl1 | ssim
      match_weight=1.0,
      msc_mode='reference',     # no gradient, as released; 'paper' | 'off'
      msc_weight=0.3,
      noise_sigma=0.0,          # denoising: lq = gt + σ·N(0, 1) per step
      channel_order='bgr',      # the reference feeds B, G, R; 'rgb'
      sampler='euler',          # euler (Euler-1) | heun | standard_euler
      eval_params='ema',        # the reference evaluates online weights
      ema=Config(dict(beta=0.995, update_every=10, update_after_step=100)),
  ))
  c.rf_steps = 1               # train-time validation: 1 step (reference)
  c.evals.protocols = ('irflow',)  # IR-Flow's test.py (crop 1, Y variants)
  c.total_steps = 700_000
  c.ckpt_steps = 10_000
  c.eval_steps = 10_000
  return c


def runlocal(c: Config) -> None:
  """Tiny widths, patches and step counts for CPU smoke runs and tests."""
  if c.method == 'irflow':
    c.model.variant = 'tiny'
    c.input.update(dict(patch_size=32, batch_size=2, mini_batch_sizes=(2,),
                        gt_sizes=(32,), stage_steps=(4,)))
    c.total_steps = 4
    c.irflow.ema = Config(dict(beta=0.995, update_every=1,
                               update_after_step=1))
  else:
    c.model.variant = 'demo'
    c.input.update(dict(patch_size=32, batch_size=2, mini_batch_sizes=(2, 1),
                        gt_sizes=(24, 32), stage_steps=(3, 3)))
    c.total_steps = 6
    c.rf_steps = 2
    if c.stage == 's2':
      c.phase1_steps = 3
    if 'periods' in c.get('schedule', {}):
      c.schedule.periods = (2, 4)
  c.log_training_steps = 1
  c.ckpt_steps = 2
  c.eval_steps = 0
  c.evals.max_images = 1
  c.mesh.num_devices = 1  # batches of 2 then 1 do not split over devices
