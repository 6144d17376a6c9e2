"""Inference: the public Python API over the one predictor path.

```python
from restorect_jax import inference
p = inference.from_workdir('runs/s2_lol_v1')           # or from_weights(...)
out = p.predict(lq, name='0001.png')                     # (H, W, 3) in [0, 1]
```

Every command (training evaluation, ``main --mode eval``, ``evaluate``,
``restore``, the demo) restores through the same :class:`Predictor`, so a
checkpoint and an image give one output whichever way it is run.
:func:`restore` / :func:`restore_with_noise` keep the array API of
deployed RestoRect (``params = {'interface': ..., 'decom_low': ...}``) on
top of the same predictor. Tiling, buckets and the ×8 ensemble
(:mod:`restorect_jax.inference.tiling`) wrap a predictor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.inference.predictor import NonFiniteOutputError
from restorect_jax.inference.predictor import Predictor
from restorect_jax.inference.predictor import image_key
from restorect_jax.inference.predictor import name_tag


def from_workdir(workdir: str, **kw) -> Predictor:
  """See :func:`restorect_jax.inference.loading.from_workdir`."""
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  return loading.from_workdir(workdir, **kw)


def from_weights(model_name: str, weights: str, **kw) -> Predictor:
  """See :func:`restorect_jax.inference.loading.from_weights`."""
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  return loading.from_weights(model_name, weights, **kw)


def _student(params: Mapping[str, Any], rf_steps: int,
             model: nn.Module | None) -> Predictor:
  from restorect_jax.methods.restorect import predictor as pred  # pylint: disable=g-import-not-at-top
  from restorect_jax.models import Interface  # pylint: disable=g-import-not-at-top
  return pred.student_predictor(params['interface'], params['decom_low'],
                                model=model or Interface(), info={},
                                default_steps=int(rf_steps))


def restore_with_noise(params: Mapping[str, Any], lq: jax.Array,
                       noise_rex: jax.Array, noise_img: jax.Array, *,
                       rf_steps: int = 5, model: nn.Module | None = None,
                       clip: bool = True) -> np.ndarray:
  """Deployed RestoRect on a (B, H, W, 3) batch with given prior noise.

  Each image is reflect-padded on the bottom and right to a multiple of 8
  (as the reference test does), restored through the student predictor
  with its row of ``noise_rex`` / ``noise_img`` ((B, 256) each) and
  cropped back; clamped to [0, 1] when ``clip``.
  """
  p = _student(params, rf_steps, model)
  lq = np.asarray(lq, np.float32)
  return np.stack([p.predict(
      lq[i], noise=(jnp.asarray(noise_rex)[i:i + 1],
                    jnp.asarray(noise_img)[i:i + 1]), clip=clip)
                   for i in range(lq.shape[0])])


def restore(params: Mapping[str, Any], lq: np.ndarray, *, names: list[str],
            rf_steps: int = 5, seed: int = 0,
            model: nn.Module | None = None, clip: bool = True
            ) -> np.ndarray:
  """Deployed RestoRect on a (B, H, W, 3) batch, noise keyed by name.

  Same (seed, name) → the output every other command gives for that image.
  """
  p = _student(params, rf_steps, model)
  lq = np.asarray(lq, np.float32)
  if len(names) != lq.shape[0]:
    raise ValueError(f'{lq.shape[0]} images but {len(names)} names.')
  return np.stack([p.predict(lq[i], name=names[i], seed=seed, clip=clip)
                   for i in range(lq.shape[0])])


__all__ = ['NonFiniteOutputError', 'Predictor', 'from_weights',
           'from_workdir', 'image_key', 'name_tag', 'restore',
           'restore_with_noise']
