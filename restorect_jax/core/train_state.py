"""The training state: params, EMA params, optimizer state, step and rng."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  """A pure pytree; ``tx`` is static so the state can cross ``jax.jit``.

  ``opt_state`` is a dict of optimizer states keyed by name: S1 uses
  ``{'main'}``, S2 ``{'phase1', 'phase2'}`` (the reference steps a separate
  optimizer per phase, so phase 2 starts with fresh moments).
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: dict[str, Any]
  rng: jax.Array
  tx: dict[str, optax.GradientTransformation] = flax.struct.field(
      pytree_node=False)

  @classmethod
  def create(cls, params, tx: dict[str, optax.GradientTransformation],
             rng: jax.Array) -> 'TrainState':
    """A fresh state: EMA = a copy of ``params``, fresh optimizer states.

    Built by one jitted program: run eagerly, every distinct leaf shape
    compiles its own small ``zeros`` / ``copy`` program (about 150 of them,
    4.4 s, for the demo teacher on the 2-core CPU).
    """
    def build(params, rng):
      return cls(step=jnp.zeros((), jnp.int32), params=params,
                 ema_params=jax.tree.map(jnp.copy, params),
                 opt_state={k: t.init(params) for k, t in tx.items()},
                 rng=rng, tx=tx)
    return jax.jit(build)(params, rng)

  def apply_gradients(self, grads, *, which: str, ema_decay: float
                      ) -> 'TrainState':
    """One optimizer step with ``tx[which]``, then the EMA update."""
    updates, new_opt = self.tx[which].update(grads, self.opt_state[which],
                                             self.params)
    params = optax.apply_updates(self.params, updates)
    ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                       self.ema_params, params)
    return self.replace(step=self.step + 1, params=params, ema_params=ema,
                        opt_state=dict(self.opt_state, **{which: new_opt}))

  def to_dict(self) -> dict[str, Any]:
    """The checkpointed content (everything but the static ``tx``)."""
    return dict(step=self.step, params=self.params,
                ema_params=self.ema_params, opt_state=self.opt_state,
                rng=self.rng)

  def from_dict(self, d: dict[str, Any]) -> 'TrainState':
    return self.replace(**d)
