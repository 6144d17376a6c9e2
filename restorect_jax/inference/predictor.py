"""The Predictor: the one path that runs a trained model on an image.

Training evaluation, ``main --mode eval``, the evaluate and restore CLIs,
the demo and the Python API all restore through :meth:`Predictor.predict`
(or, for tiles and ensembles, its two halves :meth:`Predictor.prepare` and
:meth:`Predictor.run`). A method builds one (``Method.predictor``); padding,
tiling, buckets and the ×8 ensemble wrap it and never reach inside.

Seed rule, everywhere: a stochastic predictor (RestoRect's prior sampler)
draws its noise from ``fold_in(key(seed), name_tag(name))``, keyed by the
image's name (the file name without folder and extension), so an image gets
the same output whichever command, folder or order restores it.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.models import layers


class NonFiniteOutputError(FloatingPointError):
  """A restored image holds NaN or inf values."""


def name_tag(name: str) -> int:
  """A non-negative int32 from an image's name (CRC-32 of its stem).

  ``'/data/low/0001.png'``, ``'0001.png'`` and ``'0001'`` give one tag.
  """
  stem = os.path.splitext(os.path.basename(str(name)))[0]
  return zlib.crc32(stem.encode()) & 0x7FFFFFFF


def image_key(seed: int, name: str) -> jax.Array:
  """The per-image key ``fold_in(key(seed), name_tag(name))``."""
  return jax.random.fold_in(jax.random.key(int(seed)), name_tag(name))


@dataclasses.dataclass
class Predictor:
  """A loaded model: ``prepare`` once per image, ``run`` per batch / tile.

  Attributes:
    method: the method's registry name.
    multiple: padded input sides are multiples of this.
    stochastic: whether outputs depend on the seed.
    default_steps: the sampling steps used when none are given.
    info: provenance for result files (source, step, hash, config).
    prepare_fn: ``(padded lq (1, H, W, 3), steps, key, padded gt or None)
      -> context``: what depends on the whole image (RestoRect: the priors).
    run_fn: ``(batch (B, h, w, 3), context, steps) -> (B, h, w, 3)``.
    needs_gt: the model sees the ground truth (a privileged teacher); such
      a predictor evaluates on paired data only and cannot tile.
    refills_padding: the model rewrites the padded border from the image
      before every network call (IR-Flow: its reference pads and crops at
      every sampler step). ``run_fn`` then takes a fourth argument, the
      (B, 2) valid (h, w) of each batch item (None: all of it is image),
      and the callers that pad (``predict``, tiles, buckets) pass it.
  """
  method: str
  multiple: int
  stochastic: bool
  default_steps: int
  info: dict[str, Any]
  prepare_fn: Callable[..., Any]
  run_fn: Callable[[jax.Array, Any, int], jax.Array]
  needs_gt: bool = False
  refills_padding: bool = False

  def steps_or_default(self, steps: int | None) -> int:
    """``steps`` checked (≥ 1), or :attr:`default_steps`."""
    steps = self.default_steps if steps is None else int(steps)
    if steps < 1:
      raise ValueError(f'The number of sampling steps must be >= 1, got '
                       f'{steps}.')
    return steps

  def _pad(self, image: np.ndarray) -> tuple[jax.Array, tuple[int, int]]:
    return layers.reflect_pad_to_multiple(
        jnp.asarray(image, jnp.float32)[None], self.multiple)

  def prepare(self, image: np.ndarray, *, steps: int | None = None,
              name: str = '', seed: int = 0,
              gt: np.ndarray | None = None, noise: Any = None) -> Any:
    """Image-level context from an (H, W, 3) image.

    Args:
      image: the degraded image, float in [0, 1].
      steps: sampling steps (default :attr:`default_steps`).
      name: the image's name: keys its noise (:func:`image_key`).
      seed: the run's seed.
      gt: the ground truth, for a :attr:`needs_gt` predictor.
      noise: explicit starting noise instead of the keyed draw (parity
        tests replay the reference's noise this way).
    """
    if self.needs_gt and gt is None:
      raise ValueError(f'{self.method} ({self.info.get("source", "?")}) '
                       'sees the ground truth: pass gt (it cannot restore '
                       'unpaired images).')
    steps = self.steps_or_default(steps)
    padded, _ = self._pad(image)
    gt_padded = None if gt is None else self._pad(gt)[0]
    key = image_key(seed, name) if self.stochastic else None
    return self.prepare_fn(padded, steps, key, gt_padded, noise)

  def run(self, batch: np.ndarray | jax.Array, context: Any, *,
          steps: int | None = None, valid: Any = None) -> jax.Array:
    """Restores a (B, h, w, 3) batch (sides multiples of ``multiple``).

    Args:
      batch: the padded batch.
      context: from :meth:`prepare`.
      steps: sampling steps (default :attr:`default_steps`).
      valid: (B, 2) int array: the image's (h, w) in the top-left corner of
        each item, the rest being reflect padding; None when the whole
        batch is image. Used by :attr:`refills_padding` predictors only.
    """
    b = jnp.asarray(batch, jnp.float32)
    h, w = b.shape[1:3]
    if h % self.multiple or w % self.multiple:
      raise ValueError(f'run() needs sides that are multiples of '
                       f'{self.multiple}, got {h}x{w}.')
    steps = self.steps_or_default(steps)
    if self.refills_padding:
      if valid is not None:
        valid = jnp.broadcast_to(jnp.asarray(valid, jnp.int32),
                                 (b.shape[0], 2))
      return self.run_fn(b, context, steps, valid)
    return self.run_fn(b, context, steps)

  def predict(self, lq: np.ndarray, *, name: str = '',
              steps: int | None = None, seed: int = 0,
              gt: np.ndarray | None = None, noise: Any = None,
              clip: bool = True) -> np.ndarray:
    """Restores one (H, W, 3) image: pad, prepare, run, crop, clip.

    Raises:
      NonFiniteOutputError: the output holds NaN / inf (a damaged
        checkpoint, or an input the model cannot handle); never returned.
    """
    lq = np.asarray(lq, np.float32)
    layers.check_image(lq[None], 3, f'image {name or "(unnamed)"}')
    context = self.prepare(lq, steps=steps, name=name, seed=seed, gt=gt,
                           noise=noise)
    padded, (h, w) = self._pad(lq)
    out = np.asarray(self.run(padded, context, steps=steps,
                              valid=[[h, w]]))[0, :h, :w]
    check_finite(out, name, self.info)
    return np.clip(out, 0.0, 1.0) if clip else out


def check_finite(out: np.ndarray, name: str, info: dict[str, Any]) -> None:
  """Raises :class:`NonFiniteOutputError` naming the image and the model."""
  if not np.isfinite(out).all():
    bad = int(np.size(out) - np.isfinite(out).sum())
    raise NonFiniteOutputError(
        f'{name or "image"}: the restored output has {bad} non-finite '
        f'values (model {info.get("source", "?")}); nothing was written. '
        'Is the checkpoint damaged?')
