"""The sharded train step moves no batch-sized all-gather (issue 16 item 7).

On 8 fake CPU devices (tests/conftest.py), a data-parallel step with
replicated parameters should communicate only the gradient all-reduce.
Public reports say batch-sharded grouped convolutions all-gather the batch
under SPMD (openxla/xla#47945); this checks every depthwise formulation
(``models/layers.DEPTHWISE_FORMULATIONS``) in the compiled HLO of a real
train step (``core.train_step``) of an RGFormer transformer block.
"""

from __future__ import annotations

import re

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import optax

from restorect_jax.core import sharding
from restorect_jax.core import train_step
from restorect_jax.core.train_state import TrainState
from restorect_jax.models.rgformer import TransformerBlock

BATCH = 8  # one image per fake device
SIZE = 16
CHANNELS = 16


def _hlo(formulation: str, fsdp: int = 1) -> str:
  mesh = sharding.make_mesh(BATCH, fsdp)
  block = TransformerBlock(dim=CHANNELS, num_heads=2, depthwise=formulation)
  x = jnp.zeros((1, SIZE, SIZE, CHANNELS))
  z = jnp.zeros((1, 256))
  params = {'model': block.init(jax.random.PRNGKey(0), x, z)['params']}

  def loss(p, batch, frozen, draws):
    del frozen, draws
    y = block.apply({'params': p['model']}, batch['lq'], batch['z'])
    value = jnp.mean(jnp.square(y - batch['gt']))
    return value, {}

  phase = train_step.Phase('main', loss, 0.999, optax.constant_schedule(1e-3))
  tx = {'main': optax.adam(1e-3)}
  state = TrainState.create(params, tx, jax.random.PRNGKey(0))
  shardings = sharding.param_shardings(state, mesh, fsdp_min_size=256)
  state = sharding.place(state, shardings)
  step = train_step.jit_step(train_step.make_train_step(phase), mesh=mesh,
                             state_sharding=shardings)
  batch = {'lq': jnp.zeros((BATCH, SIZE, SIZE, CHANNELS)),
           'gt': jnp.zeros((BATCH, SIZE, SIZE, CHANNELS)),
           'z': jnp.zeros((BATCH, 256))}
  batch = jax.device_put(batch, sharding.data_sharding(mesh))
  compiled = step.lower(state, batch, {}).compile()
  return compiled.as_text()


class ShardedHloTest(parameterized.TestCase):

  @parameterized.parameters('shifted', 'shifted_vjp', 'lax')
  def test_only_the_gradient_all_reduce(self, formulation):
    hlo = _hlo(formulation)
    gathers = [line.strip() for line in hlo.splitlines()
               if re.search(r'\ball-gather(-start)?\(', line)]
    # A batch-sized all-gather has BATCH in its leading output dimension.
    batch_sized = [g for g in gathers
                   if re.search(rf'\[{BATCH},{SIZE},{SIZE}', g)]
    self.assertEmpty(batch_sized, '\n'.join(batch_sized[:3]))
    self.assertEmpty(gathers, '\n'.join(gathers[:3]))
    # The gradients are reduced across the 8 devices.
    self.assertRegex(hlo, r'all-reduce(-start)?\(')

  def test_detects_parameter_all_gathers(self):
    # FSDP (data 4 x fsdp 2) must gather its split parameters: proves the
    # pattern above finds all-gathers in this HLO dialect.
    hlo = _hlo('shifted_vjp', fsdp=2)
    self.assertRegex(hlo, r'\ball-gather(-start)?\(')


if __name__ == '__main__':
  absltest.main()
