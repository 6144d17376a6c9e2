"""The generic train step: loss → gradients → optimizer → EMA, and its jit.

A method supplies, per phase, a loss ``(params, batch, frozen, draws) ->
(loss, metrics)`` and a draw function ``(rng, batch) -> draws`` that makes
every random draw of the step outside the loss; :func:`make_train_step`
wraps them into ``(state, batch, frozen) -> (state, metrics)``. Keeping the
draws outside the loss lets a recorded step of the reference replay through
the project's own step (``tests/train_step_parity_test.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import optax

from restorect_jax.core import sharding
from restorect_jax.core.train_state import TrainState

Metrics = dict[str, jax.Array]
LossFn = Callable[..., tuple[jax.Array, Metrics]]
DrawFn = Callable[[jax.Array, dict[str, jax.Array]], dict[str, jax.Array]]


def f32(tree: Any) -> Any:
  """Floating leaves as float32 (a no-op on float32 trees).

  Network outputs pass through this before any loss term: with
  ``config.compute_dtype='bfloat16'`` the networks compute in bfloat16 but
  every loss is reduced in float32.
  """
  return jax.tree.map(
      lambda x: x.astype(jnp.float32)
      if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, tree)


def no_draws(rng: jax.Array, batch: dict[str, jax.Array]) -> dict:
  """The draw function of a step that draws nothing."""
  del rng, batch
  return {}


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training phase of a method: what a step of it computes.

  Attributes:
    optimizer: the key of the optimizer in ``state.tx`` that steps.
    loss: ``(params, batch, frozen, draws) -> (loss, metrics)``.
    draw: ``(rng, batch) -> draws``: every random draw of the step.
    ema_decay: EMA decay on params, or a function of the step giving it.
    schedule: the optimizer's lr schedule, for logging.
    count_offset: global step at which the optimizer's count is 0.
  """
  optimizer: str
  loss: LossFn
  ema_decay: float | Callable[[jax.Array], jax.Array]
  schedule: optax.Schedule
  draw: DrawFn = no_draws
  count_offset: int = 0


def make_train_step(phase: Phase) -> Callable:
  """Wraps a phase into ``(state, batch, frozen) -> (state, metrics)``.

  The step's key is ``fold_in(state.rng, state.step)``; ``phase.draw`` turns
  it into the step's draws before the loss runs.
  """
  def step(state: TrainState, batch, frozen):
    draws = phase.draw(jax.random.fold_in(state.rng, state.step), batch)
    (loss, metrics), grads = jax.value_and_grad(phase.loss, has_aux=True)(
        state.params, batch, frozen, draws)
    decay = phase.ema_decay
    decay = decay(state.step) if callable(decay) else decay
    new_state = state.apply_gradients(grads, which=phase.optimizer,
                                      ema_decay=decay)
    metrics = dict(metrics, loss=loss, l2_grads=optax.tree.norm(grads),
                   lr=phase.schedule(state.step - phase.count_offset))
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
      ``{'xla_backend_optimization_level': 1}``
      (``benchmarks/compile_bench.py`` passes its option sets here).
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


def jit_phases(phases: dict[str, Phase], **jit_kw) -> dict[str, Callable]:
  """Jitted train steps of every phase (``jit_kw`` go to :func:`jit_step`)."""
  return {name: jit_step(make_train_step(p), **jit_kw)
          for name, p in phases.items()}
