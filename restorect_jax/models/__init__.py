"""Model registry: ``Model(name, variant=..., **overrides)``.

Variants (widths and depths; parameter counts from ``jax.eval_shape``, equal
to the reference's, spec §3):

| variant | dim | blocks    | refine | n_encoder_res | Teacher    | Student    | Interface  |
|---------|-----|-----------|--------|---------------|------------|------------|------------|
| default | 64  | [3,3,3,3] | 3      | 5             | 25,888,763 | 26,219,003 | 26,105,911 |
| tiny    | 16  | [1,1,1,1] | 1      | 2             | (the parity fixtures' size)           |
| demo    | 16  | [1,1,1,1] | 1      | 1             | (CPU demo / tests)                    |

IR-Flow (``Model('irflow')`` = ConditionalUNet, ``Model('irflow_base')`` =
the time-free UNet; spec ``irflow.md`` §4), in_nc = out_nc = 3:

| variant | nf | depth | ConditionalUNet | UNet        |
|---------|----|-------|-----------------|-------------|
| default | 64 | 4     | 137,138,115     | 133,009,475 |
| small   | 16 | 4     | 8,953,587       | 8,692,499   |
| tiny    | 4  | 4     | 655,215         | 638,135     |

(``small`` is the ``irflow_unet`` parity fixture, ``tiny`` the
``irflow_euler`` / ``irflow_loss`` ones.)

Formulation options (same parameters and parameter tree, the same function
up to float rounding; pass them as overrides):

* ``depthwise`` (RestoRect: ``teacher`` / ``student`` / ``interface``) — the
  transformer blocks' depthwise 3×3 convolution, one of
  ``layers.DEPTHWISE_FORMULATIONS``: ``'auto'`` (default: ``'shifted_vjp'``
  on CPU, ``'shifted'`` on GPU/TPU), ``'shifted'``, ``'shifted_vjp'``,
  ``'lax'`` (``layers.depthwise_conv3x3``);
* ``attention`` (IR-Flow: ``irflow`` / ``irflow_base``) — the linear
  attention, ``'folded'`` (default) or ``'reference'``
  (``irflow_unet.LinearAttention``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax

from restorect_jax.models import irflow_unet
from restorect_jax.models import layers
from restorect_jax.models.decom_net import DecomNet
from restorect_jax.models.irflow_unet import ConditionalUNet
from restorect_jax.models.irflow_unet import UNet
from restorect_jax.models.prior_encoders import PriorEncoder
from restorect_jax.models.prior_encoders import RetinexPriorEncoder
from restorect_jax.models.restorect import Interface
from restorect_jax.models.restorect import Student
from restorect_jax.models.restorect import Teacher
from restorect_jax.models.rgformer import RGFormer
from restorect_jax.models.velocity import VelocityPredictor

VARIANTS: dict[str, dict[str, Any]] = {
    'default': dict(dim=64, num_blocks=(3, 3, 3, 3), num_refinement_blocks=3,
                    heads=(1, 2, 4, 8), n_encoder_res=5),
    'tiny': dict(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                 heads=(1, 2, 4, 8), n_encoder_res=2),
    'demo': dict(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                 heads=(1, 2, 4, 8), n_encoder_res=1),
}

IRFLOW_VARIANTS: dict[str, dict[str, Any]] = {
    'default': dict(nf=64, depth=4),
    'small': dict(nf=16, depth=4),
    'tiny': dict(nf=4, depth=4),
}

IRFLOW_MODELS = {
    'irflow': ConditionalUNet,
    'irflow_base': UNet,
}

MODELS = {
    'teacher': Teacher,
    'student': Student,
    'interface': Interface,
}


def variant_kwargs(variant: str = 'default', **overrides) -> dict[str, Any]:
  """The keyword arguments of a variant, with overrides applied."""
  if variant not in VARIANTS:
    raise ValueError(
        f'Unknown variant {variant!r}; known: {sorted(VARIANTS)}.')
  kwargs = dict(VARIANTS[variant])
  unknown = set(overrides) - set(Teacher.__dataclass_fields__) - {
      'timesteps'}
  if unknown:
    raise ValueError(f'Unknown model options: {sorted(unknown)}.')
  if 'depthwise' in overrides:
    layers.check_depthwise(overrides['depthwise'])
  kwargs.update(overrides)
  return kwargs


def irflow_variant_kwargs(variant: str = 'default', **overrides
                          ) -> dict[str, Any]:
  """The IR-Flow U-Net keyword arguments of a variant, with overrides."""
  if variant not in IRFLOW_VARIANTS:
    raise ValueError(
        f'Unknown IR-Flow variant {variant!r}; known: '
        f'{sorted(IRFLOW_VARIANTS)}.')
  fields = {f.name for f in dataclasses.fields(ConditionalUNet)}
  unknown = set(overrides) - (fields - {'parent', 'name'})
  if unknown:
    raise ValueError(f'Unknown model options: {sorted(unknown)}.')
  if 'attention' in overrides:
    irflow_unet.check_attention(overrides['attention'])
  kwargs = dict(IRFLOW_VARIANTS[variant])
  kwargs.update(overrides)
  return kwargs


def Model(name: str, variant: str = 'default', **overrides) -> nn.Module:  # pylint: disable=invalid-name
  """Builds a registry model.

  Args:
    name: ``teacher``, ``student``, ``interface``, ``decomnet`` (RestoRect),
      ``irflow`` (IR-Flow's ConditionalUNet) or ``irflow_base`` (its
      time-free UNet).
    variant: a key of ``VARIANTS`` (RestoRect) or ``IRFLOW_VARIANTS``.
    **overrides: constructor arguments replacing the variant's, e.g. the
      formulation options ``depthwise`` (RestoRect) or ``attention``
      (IR-Flow) of the module docstring.

  Returns:
    The (unbound) Linen module.

  Raises:
    ValueError: unknown name, variant, option or formulation.
  """
  if name == 'decomnet':
    return DecomNet(**overrides)
  if name in IRFLOW_MODELS:
    return IRFLOW_MODELS[name](**irflow_variant_kwargs(variant, **overrides))
  if name not in MODELS:
    known = sorted(MODELS) + ['decomnet'] + sorted(IRFLOW_MODELS)
    raise ValueError(f'Unknown model {name!r}; known: {known}.')
  return MODELS[name](**variant_kwargs(variant, **overrides))


def init_variables(module: nn.Module, seed: int | jax.Array, *args,
                   **kwargs) -> dict[str, Any]:
  """Jitted ``module.init`` with an ``unsafe_rbg`` key.

  Initialisation runs once, so it is built for compile time, not speed:
  threefry-based keys make XLA compile every parameter's ``fold_in`` as a
  threefry hash, and ``rbg`` keeps threefry for ``fold_in``; ``unsafe_rbg``
  derives them with the bit generator too (initial values need no
  cryptographic-quality bits). With LLVM's expensive passes off the demo
  teacher's init compiles in 8.2 s instead of 22.2 s (threefry) or 17.6 s
  (``rbg``) on the 2-core CPU; the program still runs in 0.03 s.

  Args:
    module: the Linen module.
    seed: an int seed, or a key whose data seeds the key.
    *args, **kwargs: example inputs for ``module.init``.
  """
  if not isinstance(seed, int):
    seed = int(jax.random.randint(seed, (), 0, 2**31 - 1))
  key = jax.random.key(seed, impl='unsafe_rbg')
  init = jax.jit(module.init,
                 compiler_options={'xla_llvm_disable_expensive_passes': True})
  return init(key, *args, **kwargs)


__all__ = [
    'ConditionalUNet', 'DecomNet', 'IRFLOW_VARIANTS', 'Interface', 'Model',
    'PriorEncoder', 'RGFormer', 'RetinexPriorEncoder', 'Student', 'Teacher',
    'UNet', 'VARIANTS', 'VelocityPredictor', 'init_variables',
    'irflow_variant_kwargs', 'variant_kwargs',
]
