"""Pure training and evaluation steps: RestoRect's three stages and IR-Flow.

Each step is ``(state, batch, frozen) -> (state, metrics)``: ``frozen``
holds what is not trained (the DecomNets ``decom_low``/``decom_high`` and, in
S2, the teacher's EMA parameters) and is passed in rather than closed over,
so it is neither baked into the compiled program nor checkpointed with the
student. Loss terms follow spec §1 / §2.7; the paper-vs-code switches are in
``config.switches`` (README, "Reference vs paper").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import optax

from restorect_jax import flow
from restorect_jax import irflow_flow
from restorect_jax import losses
from restorect_jax import optim
from restorect_jax import sharding
from restorect_jax.models.rgformer import DECODER_LEVELS
from restorect_jax.train_state import TrainState

sg = jax.lax.stop_gradient
Metrics = dict[str, jax.Array]


def f32(tree: Any) -> Any:
  """Floating leaves as float32 (a no-op on float32 trees).

  Network outputs pass through this before any loss term: with
  ``config.compute_dtype='bfloat16'`` the networks compute in bfloat16 but
  every loss is reduced in float32.
  """
  return jax.tree.map(
      lambda x: x.astype(jnp.float32)
      if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, tree)


def decompose(decom: nn.Module, variables: Any, img: jax.Array
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Frozen DecomNet: ``(R, L, concat(R, L))`` without gradient."""
  r, l = decom.apply(variables, img)
  r, l = sg(r), sg(l)
  return r, l, jnp.concatenate([r, l], axis=-1)


# ----------------------------------------------------------------------------
# S1: the teacher.
# ----------------------------------------------------------------------------


def teacher_loss(params, batch, frozen, *, teacher: nn.Module,
                 decom: nn.Module, config: ml_collections.ConfigDict
                 ) -> tuple[jax.Array, Metrics]:
  """S1 loss: L1 + decomposition L1s + HVI + DecomNet side terms.

  The side terms are computed on ``gt`` with ``Dh``; in the reference they
  carry no gradient (``switches.learnable_constraints=False``). With the
  switch on, the anisotropic-diffusion scale ``s`` and the HVI ``k`` in
  ``params['constraints']`` are trained, as the paper describes.
  """
  lq, gt = batch['lq'], batch['gt']
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  r_gt, l_gt, rex_gt = decompose(decom, frozen['decom_high'], gt)
  res = f32(teacher.apply({'params': params['model']}, lq, gt, rex_lq,
                          rex_gt))
  r_gt, l_gt, rex_gt = f32((r_gt, l_gt, rex_gt))
  learnable = config.switches.learnable_constraints
  cons = params['constraints'] if learnable else sg(params['constraints'])
  lw = config.losses
  terms = {
      'l1': losses.l1_loss(res['out'], gt),
      'decom_mat': losses.l1_loss(res['decom_mat'], rex_gt),
      'decom_img': losses.l1_loss(res['decom_img'], lq),
      'hvi': losses.hvi_color_loss(res['out'], gt, weight=lw.hvi_weight,
                                   k=cons['hvi_k']),
  }
  side = losses.decom_constraints(gt, r_gt, l_gt, s=cons['aniso_s'],
                                  weights=tuple(lw.decom_weights_s1))
  if not learnable:
    side = sg(side)
  terms.update(side)
  loss = sum(terms.values())
  return loss, {f'loss_{k}': v for k, v in terms.items()}


# ----------------------------------------------------------------------------
# S2: the student.
# ----------------------------------------------------------------------------


def _teacher_targets(frozen, lq, gt, rex_lq, rex_gt, *, teacher, want_feats):
  """Teacher priors (and decoder features) under stop_gradient."""
  tv = {'params': frozen['teacher']}
  if not want_feats:
    z_rex, z_img = f32(teacher.apply(tv, lq, gt, rex_lq, rex_gt,
                                     method='priors'))
    return sg(z_rex), sg(z_img), None
  res, inter = f32(teacher.apply(tv, lq, gt, rex_lq, rex_gt,
                                 mutable=['intermediates']))
  feats = [inter['intermediates']['G'][k][0] for k in DECODER_LEVELS]
  return sg(res['z_rex']), sg(res['z_img']), [sg(f) for f in feats]


def student_loss(params, batch, frozen, rng, *, phase: int,
                 student: nn.Module, teacher: nn.Module, decom: nn.Module,
                 config: ml_collections.ConfigDict
                 ) -> tuple[jax.Array, Metrics]:
  """S2 loss for phase 1 (flow only) or phase 2 (full student).

  Phase 1: ``w1 (MSE_v_rex + MSE_v_img) + KD-L1``. Phase 2: pixel and
  decomposition L1s of G run on the *sampled* priors, ``+ KD-L1 + FLEX +
  w2 (MSE_v_rex + MSE_v_img)``. By default (reference) the sampled priors
  carry no gradient, so KD and FLEX only shift the loss value
  (``switches.kd_gradient`` turns the gradient on).
  """
  sw, lw = config.switches, config.losses
  lq, gt = batch['lq'], batch['gt']
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  _, _, rex_gt = decompose(decom, frozen['decom_high'], gt)
  feats_wanted = phase == 2 and sw.flex_target == 'decoder'
  z_rex, z_img, t_feats = _teacher_targets(
      frozen, lq, gt, rex_lq, rex_gt, teacher=teacher,
      want_feats=feats_wanted)
  sv = {'params': params['model']}
  b = lq.shape[0]
  keys = jax.random.split(rng, 6)

  c_rex, c_img = student.apply(sv, lq, rex_lq, method='conditions')
  mse = {}
  for i, (which, z, c) in enumerate((('rex', z_rex, c_rex),
                                     ('img', z_img, c_img))):
    t, t_idx = flow.sample_time(keys[2 * i], b,
                                continuous=sw.continuous_time)
    eps = jax.random.normal(keys[2 * i + 1], z.shape)
    x_t = flow.interpolate(z, eps, t)
    v = f32(student.apply(sv, which, x_t, t_idx, c, method='velocity'))
    mse[which] = flow.velocity_mse(v, flow.velocity_target(z, eps))

  k_rex, k_img = jax.random.split(keys[4])
  noise_rex = jax.random.normal(k_rex, z_rex.shape)
  noise_img = jax.random.normal(k_img, z_img.shape)
  # The conditions computed above feed the sampler too (the reference
  # recomputes them from the same input; the values are identical).
  zh_rex, zh_img = f32(student.apply(sv, c_rex, c_img, noise_rex, noise_img,
                                     config.rf_steps,
                                     method='sample_from_conditions'))
  if not sw.kd_gradient:
    zh_rex, zh_img = sg(zh_rex), sg(zh_img)
  kd_kl, kd_l1 = losses.kd_loss([z_rex, z_img], [zh_rex, zh_img],
                                temperature=lw.kd_temperature)
  kd_l1 = lw.kd_weight * kd_l1
  metrics = {'loss_velocity_rex': mse['rex'], 'loss_velocity_img': mse['img'],
             'loss_kd_l1': kd_l1, 'kd_kl': sg(kd_kl)}
  if phase == 1:
    terms = {'velocity': lw.velocity_weight_phase1 * (mse['rex'] + mse['img']),
             'kd_l1': kd_l1}
  else:
    if feats_wanted:
      (out, decom_img, decom_mat), inter = f32(student.apply(
          sv, lq, zh_rex, zh_img, method='restore_with_priors',
          mutable=['intermediates']))
      s_feats = [inter['intermediates']['G'][k][0] for k in DECODER_LEVELS]
      flex = losses.flex_loss(t_feats, s_feats, loss_weight=lw.flex_weight,
                              layer_weights=tuple(lw.flex_layer_weights),
                              timestep=lw.flex_timestep)
    else:
      out, decom_img, decom_mat = f32(student.apply(
          sv, lq, zh_rex, zh_img, method='restore_with_priors'))
      flex = losses.flex_loss([z_rex, z_img], [zh_rex, zh_img],
                              loss_weight=lw.flex_weight,
                              layer_weights=tuple(lw.flex_layer_weights),
                              timestep=lw.flex_timestep)
    terms = {
        'l1': losses.l1_loss(out, gt),
        'decom_img': losses.l1_loss(decom_img, lq),
        'decom_mat': losses.l1_loss(decom_mat, f32(rex_gt)),
        'kd_l1': kd_l1,
        'flex': flex,
        'velocity': lw.velocity_weight_phase2 * (mse['rex'] + mse['img']),
    }
  loss = sum(terms.values())
  metrics.update({f'loss_{k}': v for k, v in terms.items()})
  return loss, metrics


# ----------------------------------------------------------------------------
# IR-Flow.
# ----------------------------------------------------------------------------


def irflow_velocity(model: nn.Module, params, *, channel_order: str,
                    base: bool = False) -> Callable:
  """``f(x, k)`` of the IR-Flow network on RGB data.

  ``channel_order='bgr'`` reproduces the reference, which feeds B, G, R
  tensors (spec §6): the network sees and predicts reversed channels. The
  flow is linear per channel, so flipping at the network boundary equals
  training on BGR data.
  """
  if channel_order not in ('rgb', 'bgr'):
    raise ValueError(f"channel_order must be 'rgb' or 'bgr', got "
                     f'{channel_order!r}.')
  flip = (lambda x: x[..., ::-1]) if channel_order == 'bgr' else (
      lambda x: x)
  variables = {'params': params}

  def f(x, k):
    y = model.apply(variables, flip(x)) if base else model.apply(
        variables, flip(x), k)
    return flip(y)
  return f


def irflow_loss(params, batch, frozen, rng, *, model: nn.Module,
                config: ml_collections.ConfigDict
                ) -> tuple[jax.Array, Metrics]:
  """IR-Flow loss: MSE to the cumulative velocity + the MSC term (spec §3)."""
  del frozen
  c = config.irflow
  net = irflow_velocity(model, params['model'],
                        channel_order=c.channel_order, base=c.base)
  f = lambda x, k: f32(net(x, k))
  return irflow_flow.training_loss(
      f, batch['lq'], batch['gt'], rng, cumulative=c.cumulative,
      loss_kind=c.loss_kind, match_weight=c.match_weight,
      msc_mode=c.msc_mode, msc_weight=c.msc_weight,
      noise_sigma=c.noise_sigma, base=c.base)


def irflow_ema(config: ml_collections.ConfigDict) -> Callable:
  """The reference's ema_pytorch schedule (``optim.ema_pytorch_decay``)."""
  e = config.irflow.ema
  return functools.partial(
      optim.ema_pytorch_decay, beta=e.beta, update_every=e.update_every,
      update_after_step=e.update_after_step)


def irflow_predict(params, lq, *, model: nn.Module, num_steps: int,
                   sampler: str = 'euler', channel_order: str = 'bgr',
                   base: bool = False):
  """IR-Flow restoration of a batch: the sampler run from ``lq`` (t = 1)."""
  f = irflow_velocity(model, params['model'], channel_order=channel_order,
                      base=base)
  if base:
    return f(lq, None)
  samplers = {'euler': irflow_flow.euler_sample,
              'heun': irflow_flow.heun_sample,
              'standard_euler': irflow_flow.standard_euler_sample}
  if sampler not in samplers:
    raise ValueError(f'Unknown sampler {sampler!r}; known: '
                     f'{sorted(samplers)}.')
  return samplers[sampler](f, lq, num_steps)


# ----------------------------------------------------------------------------
# Generic step wrapper.
# ----------------------------------------------------------------------------


def make_train_step(loss_fn: Callable, *, which: str,
                    ema_decay: float | Callable[[jax.Array], jax.Array],
                    schedule: optax.Schedule, count_offset: int = 0,
                    needs_rng: bool = False) -> Callable:
  """Wraps a loss into ``(state, batch, frozen) -> (state, metrics)``.

  Args:
    loss_fn: ``(params, batch, frozen[, rng]) -> (loss, metrics)``.
    which: the optimizer in ``state.tx`` to step.
    ema_decay: EMA decay on params, or a function of the step giving it.
    schedule: the lr schedule of that optimizer, for logging.
    count_offset: global step at which that optimizer's count is 0.
    needs_rng: pass a per-step key (folded from ``state.rng`` and the step).
  """
  def step(state: TrainState, batch, frozen):
    args = (batch, frozen)
    if needs_rng:
      args += (jax.random.fold_in(state.rng, state.step),)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, *args)
    decay = ema_decay(state.step) if callable(ema_decay) else ema_decay
    new_state = state.apply_gradients(grads, which=which, ema_decay=decay)
    metrics = dict(metrics, loss=loss, l2_grads=optax.tree.norm(grads),
                   lr=schedule(state.step - count_offset))
    return new_state, metrics
  return step


def jit_step(fn: Callable, *, mesh: Mesh | None = None,
             state_sharding: Any = None, donate: bool = False,
             compiler_options: dict[str, Any] | None = None) -> Callable:
  """``jax.jit`` of a ``(state, batch, frozen)`` step.

  Args:
    fn: the step.
    mesh: the training mesh; with it the batch is split over every mesh
      axis, ``frozen`` and the metrics are replicated and the state keeps
      ``state_sharding`` (replicated if None).
    state_sharding: a pytree of shardings matching the train state.
    donate: donate the input state's buffers to the output state (the
      caller must not use the old state afterwards).
    compiler_options: XLA options for this step's compilation, e.g.
      ``{'xla_cpu_use_fusion_emitters': False}`` (3x faster XLA:CPU
      compiles of these networks; the tests use it).
  """
  kw = dict(donate_argnums=(0,) if donate else (),
            compiler_options=compiler_options)
  if mesh is None:
    return jax.jit(fn, **kw)
  repl = sharding.replicated(mesh)
  state_sharding = repl if state_sharding is None else state_sharding
  return jax.jit(fn, in_shardings=(state_sharding, sharding.data_sharding(mesh),
                                   repl),
                 out_shardings=(state_sharding, repl), **kw)


def make_stage_steps(config: ml_collections.ConfigDict, *, teacher, student,
                     decom, schedules: dict[str, optax.Schedule],
                     mesh: Mesh | None = None, state_sharding: Any = None,
                     donate: bool = False,
                     compiler_options: dict[str, Any] | None = None
                     ) -> dict[str, Callable]:
  """Jitted train steps of the configured stage, keyed by optimizer name.

  For ``stage='irflow'`` the trained network is passed as ``student``.
  ``mesh``, ``state_sharding``, ``donate`` and ``compiler_options`` go to
  :func:`jit_step`.
  """
  jit = functools.partial(jit_step, mesh=mesh, state_sharding=state_sharding,
                          donate=donate, compiler_options=compiler_options)
  if config.stage == 'irflow':
    loss = functools.partial(irflow_loss, model=student, config=config)
    fns = {'main': make_train_step(
        loss, which='main', ema_decay=irflow_ema(config),
        schedule=schedules['main'], needs_rng=True)}
    return {k: jit(f) for k, f in fns.items()}
  ema = config.optim.ema_decay
  if config.stage == 's1':
    loss = functools.partial(teacher_loss, teacher=teacher, decom=decom,
                             config=config)
    fns = {'main': make_train_step(loss, which='main', ema_decay=ema,
                                   schedule=schedules['main'])}
  else:
    fns = {}
    for phase, name in ((1, 'phase1'), (2, 'phase2')):
      loss = functools.partial(student_loss, phase=phase, student=student,
                               teacher=teacher, decom=decom, config=config)
      fns[name] = make_train_step(
          loss, which=name, ema_decay=ema, schedule=schedules[name],
          count_offset=0 if phase == 1 else config.phase1_steps,
          needs_rng=True)
  return {k: jit(f) for k, f in fns.items()}


# ----------------------------------------------------------------------------
# Prediction.
# ----------------------------------------------------------------------------


def teacher_predict(params, lq, gt, frozen, *, teacher, decom):
  """Teacher output on a padded batch (it sees ``gt``: privileged)."""
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  _, _, rex_gt = decompose(decom, frozen['decom_high'], gt)
  return teacher.apply({'params': params['model']}, lq, gt, rex_lq,
                       rex_gt)['out']


def student_predict(params, lq, frozen, noise_rex, noise_img, *, student,
                    decom, rf_steps: int):
  """Student output on a padded batch with the given prior noise."""
  _, _, rex_lq = decompose(decom, frozen['decom_low'], lq)
  res = student.apply({'params': params['model']}, lq, rex_lq, noise_rex,
                      noise_img, rf_steps)
  return res['out'] if isinstance(res, dict) else res
