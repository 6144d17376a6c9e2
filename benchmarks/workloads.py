"""The benchmark rows as workloads: a JAX function and its PyTorch twin.

Shared by ``restorect_bench`` (the README table) and ``profile_ops``. Every
workload uses the same weights on both sides (the twins are built with
``torch_twin.from_flax`` from the Flax init) and the same inputs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from restorect_jax import methods
from restorect_jax.core import train_step
from restorect_jax.methods.irflow import predictor as irflow_predictor
from restorect_jax.methods.irflow.steps import irflow_velocity
from restorect_jax.models import Model
from restorect_jax.models import init_variables
from restorect_jax.models import layers
from restorect_jax.core.train_state import TrainState

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def s2_config(variant: str, dtype: str, remat: bool):
  """``configs/restorect_s2.py`` with the benchmark's model settings."""
  path = os.path.join(_REPO, 'configs', 'restorect_s2.py')
  spec = importlib.util.spec_from_file_location('restorect_s2_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('dataset=lol_v1')
  c.model.variant = variant
  c.model.dtype = dtype
  # Keys other parts of the project may add (train-step dtype, remat).
  if 'compute_dtype' in c:
    c.compute_dtype = dtype
  if remat:
    if 'remat' not in c:
      raise ValueError('remat: configs/restorect_s2.py has no remat key.')
    c.remat = True
  return c


class Setup:
  """The RestoRect models of one benchmark run, built once.

  Holds the Flax modules (the method's ``models`` of the S2 config), the
  frozen DecomNets, lazily initialised variables per model, and builds the
  torch twins of given variables. The teacher, student and interface
  compute their depthwise 3×3 convs with the ``depthwise`` model option.

  Args:
    variant: RestoRect variant.
    dtype: compute dtype name (``float32`` / ``bfloat16``).
    torch_device: torch device string, or None for JAX-only runs.
    seed: seed of the initial weights.
    channels_last: run the twins in channels_last memory format.
    remat: set ``config.remat`` for the train step.
    depthwise: the models' ``depthwise`` option
      (``layers.DEPTHWISE_FORMULATIONS``).
  """

  def __init__(self, variant, dtype, torch_device, seed, channels_last,
               remat=False, depthwise='auto'):
    self.variant, self.seed = variant, seed
    self.torch_device, self.channels_last = torch_device, channels_last
    self.config = s2_config(variant, dtype, remat)
    self.models = methods.for_config(self.config).models(self.config)
    for name in ('teacher', 'student', 'interface'):
      self.models[name] = self.models[name].clone(
          depthwise=layers.check_depthwise(depthwise))
    self.frozen = {
        'decom_low': self._init(self.models['decom'], seed + 1, 'decom'),
        'decom_high': self._init(self.models['decom'], seed + 2, 'decom'),
    }
    self.dtype = jnp.dtype(dtype)
    self._vars = {}

  def _init(self, module, seed, kind):
    img = jnp.zeros((1, 32, 32, 3), jnp.float32)
    rex = jnp.zeros((1, 32, 32, 4), jnp.float32)
    z = jnp.zeros((1, 256), jnp.float32)
    args = {'decom': (img,), 'teacher': (img, img, rex, rex),
            'student': (img, rex, z, z)}[kind]
    return init_variables(module, seed, *args)

  def variables(self, name):
    """Flax variables of 'interface', 'student' or 'teacher' (cached)."""
    if name not in self._vars:
      kind = 'teacher' if name == 'teacher' else 'student'
      self._vars[name] = self._init(self.models[name], self.seed + 3, kind)
    return self._vars[name]

  # -- torch -----------------------------------------------------------------

  def twin(self, name, variables, variant=None):
    import torch  # pylint: disable=g-import-not-at-top
    from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
    m = torch_twin.from_flax(name, variant or self.variant, variables)
    m = m.to(self.torch_device).eval()
    if self.channels_last:
      m = m.to(memory_format=torch.channels_last)
    return m

  def torch_input(self, x):
    import torch  # pylint: disable=g-import-not-at-top
    t = common.to_torch(x, self.torch_device)
    if self.channels_last and t.ndim == 4:
      t = t.contiguous(memory_format=torch.channels_last)
    return t

  def autocast(self):
    import torch  # pylint: disable=g-import-not-at-top
    if self.dtype.name != 'bfloat16':
      return contextlib.nullcontext()
    return torch.autocast(self.torch_device.split(':')[0],
                          dtype=torch.bfloat16)


def _images(seed, batch, size, n):
  rs = np.random.RandomState(seed)
  return [rs.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
          for _ in range(n)]


def student_workload(setup: Setup, n_steps: int, *, size: int,
                     batch: int) -> common.Workload:
  """Deployed student inference: Dl + Interface with N Euler steps."""
  interface, decom = setup.models['interface'], setup.models['decom']
  params = {'interface': setup.variables('interface'),
            'decom_low': setup.frozen['decom_low']}
  (lq,) = _images(setup.seed, batch, size, 1)
  rs = np.random.RandomState(setup.seed + 10)
  noise = [rs.standard_normal((batch, 256)).astype(np.float32)
           for _ in range(2)]

  def fn(params, lq, noise_rex, noise_img):
    r, l = decom.apply(params['decom_low'], lq)
    rex = jnp.concatenate([r, l], axis=-1)
    return interface.apply(params['interface'], lq, rex, noise_rex,
                           noise_img, n_steps)

  def make_torch_fn():
    import torch  # pylint: disable=g-import-not-at-top
    t_int = setup.twin('interface', params['interface'])
    t_dec = setup.twin('decomnet', params['decom_low'], variant='default')
    t_lq = setup.torch_input(lq)
    t_noise = [common.to_torch(n, setup.torch_device) for n in noise]

    def t_fn():
      with torch.inference_mode(), setup.autocast():
        r, l = t_dec(t_lq)
        return t_int(t_lq, torch.cat([r, l], 1), *t_noise, n_steps)
    return t_fn

  return common.Workload(
      f'student N={n_steps}', f'{batch}×{size}²', jax.jit(fn),
      (params, jnp.asarray(lq), *map(jnp.asarray, noise)), make_torch_fn,
      jax_value=lambda out: out, torch_value=common.to_nhwc)


def teacher_workload(setup: Setup, *, size: int,
                     batch: int) -> common.Workload:
  """Dl, Dh and the S1 teacher forward (encoders + G with decom head)."""
  teacher, decom = setup.models['teacher'], setup.models['decom']
  params = {'teacher': setup.variables('teacher'), **setup.frozen}
  lq, gt = _images(setup.seed, batch, size, 2)

  def fn(params, lq, gt):
    r, l = decom.apply(params['decom_low'], lq)
    rex_lq = jnp.concatenate([r, l], axis=-1)
    r, l = decom.apply(params['decom_high'], gt)
    rex_gt = jnp.concatenate([r, l], axis=-1)
    return teacher.apply(params['teacher'], lq, gt, rex_lq, rex_gt)['out']

  def make_torch_fn():
    import torch  # pylint: disable=g-import-not-at-top
    t_teacher = setup.twin('teacher', params['teacher'])
    t_dl = setup.twin('decomnet', params['decom_low'], variant='default')
    t_dh = setup.twin('decomnet', params['decom_high'], variant='default')
    t_lq, t_gt = setup.torch_input(lq), setup.torch_input(gt)

    def t_fn():
      with torch.inference_mode(), setup.autocast():
        r, l = t_dl(t_lq)
        rex_lq = torch.cat([r, l], 1)
        r, l = t_dh(t_gt)
        return t_teacher(t_lq, t_gt, rex_lq, torch.cat([r, l], 1))['out']
    return t_fn

  return common.Workload(
      'teacher', f'{batch}×{size}²', jax.jit(fn),
      (params, jnp.asarray(lq), jnp.asarray(gt)), make_torch_fn,
      jax_value=lambda out: out, torch_value=common.to_nhwc)


def s2_train_workload(setup: Setup, *, size: int,
                      batch: int) -> common.Workload:
  """One S2 phase-2 step (forward, backward, AdamW, EMA)."""
  config, models = setup.config, setup.models
  student_vars = setup.variables('student')
  frozen = dict(setup.frozen, teacher=setup.variables('teacher')['params'])
  params = {'model': student_vars['params']}
  method = methods.for_config(config)
  tx, schedules = method.optimizers(config, params)
  state = TrainState.create(params, tx, jax.random.PRNGKey(setup.seed))
  lq, gt = _images(setup.seed, batch, size, 2)
  step = train_step.jit_step(train_step.make_train_step(
      method.phases(config, models, schedules)['phase2']))

  def make_torch_fn():
    from benchmarks import torch_s2_step  # pylint: disable=g-import-not-at-top
    dev = setup.torch_device
    t_step = torch_s2_step.PhaseTwoStep(
        setup.twin('student', student_vars).train(),
        setup.twin('teacher', setup.variables('teacher')),
        setup.twin('decomnet', setup.frozen['decom_low'], variant='default'),
        setup.twin('decomnet', setup.frozen['decom_high'], variant='default'),
        config, float(schedules['phase2'](0)))
    # The draws of the JAX step's first call: the first losses must agree.
    randoms = torch_s2_step.to_randoms(
        torch_s2_step.jax_draws(state.rng, 0, batch), dev)
    t_lq, t_gt = setup.torch_input(lq), setup.torch_input(gt)

    def t_fn():
      with setup.autocast():
        return t_step(t_lq, t_gt, randoms)
    return t_fn

  return common.Workload(
      'S2 phase-2 step', f'{batch}×{size}²', step,
      (state, {'lq': jnp.asarray(lq), 'gt': jnp.asarray(gt)}, frozen),
      make_torch_fn, jax_value=lambda out: out[1]['loss'],
      torch_value=lambda out: out['loss'].detach().float().cpu().numpy(),
      carry=True,
      notes=('max|Δ| is |loss_JAX − loss_torch| of the first step (same '
             'params, batch and random draws); the JAX step is '
             "method.phases(config, models, schedules)['phase2'] of "
             'configs/restorect_s2.py.'))


def _torch_euler(net, x, num_steps):
  """The twin's Euler-1 sampler on BGR network input, as the JAX side."""
  import torch  # pylint: disable=g-import-not-at-top
  from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
  flip = lambda t: torch.flip(t, dims=(1,))
  return torch_twin.irflow_euler_sample(lambda y, k: flip(net(flip(y), k)),
                                        x, num_steps)


def irflow_workload(*, variant: str, size: int, batch: int, num_steps: int,
                    dtype: str, torch_device: str | None,
                    channels_last: bool, seed: int,
                    attention: str = 'folded') -> common.Workload:
  """N-step Euler-1 inference of the ConditionalUNet.

  ``attention`` is the model's linear-attention option (``'folded'`` or
  ``'reference'``, ``irflow_unet.LinearAttention``).
  """
  model = Model('irflow', variant, dtype=jnp.dtype(dtype),
                attention=attention)
  variables = init_variables(model, seed, jnp.zeros((1, 32, 32, 3)),
                             jnp.zeros((1,), jnp.int32))
  params = {'model': variables['params']}
  lq = np.random.RandomState(seed).uniform(
      0, 1, (batch, size, size, 3)).astype(np.float32)

  def fn(params, lq):
    return irflow_predictor.sample(params['model'], lq, model=model,
                                   num_steps=num_steps)

  def make_torch_fn():
    import torch  # pylint: disable=g-import-not-at-top
    from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
    net = torch_twin.from_flax('irflow', variant, variables)
    net = net.to(torch_device).eval()
    t_lq = common.to_torch(lq, torch_device)
    if channels_last:
      net = net.to(memory_format=torch.channels_last)
      t_lq = t_lq.contiguous(memory_format=torch.channels_last)

    def t_fn():
      autocast = (torch.autocast(torch_device.split(':')[0],
                                 dtype=torch.bfloat16)
                  if dtype == 'bfloat16' else contextlib.nullcontext())
      with torch.inference_mode(), autocast:
        return _torch_euler(net, t_lq, num_steps)
    return t_fn

  # The sampler is a fori_loop: cost analysis counts one UNet call of the
  # N; the other N - 1 are added from one call's count.
  velocity = jax.jit(irflow_velocity(model, params['model'],
                                     channel_order='bgr'))
  one_call = (velocity, (jnp.asarray(lq), jnp.zeros((1,), jnp.int32)),
              num_steps - 1)
  return common.Workload(
      f'IR-Flow {variant} N={num_steps}', f'{batch}×{size}²', jax.jit(fn),
      (params, jnp.asarray(lq)), make_torch_fn, jax_value=lambda out: out,
      torch_value=common.to_nhwc, loop_flops=one_call)


