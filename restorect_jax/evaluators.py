"""Paired evaluation during and after training (PSNR / SSIM, image grids).

Predictions are made at full resolution: each image is reflect-padded on the
bottom/right to a multiple of 8, restored and cropped back, clamped to
[0, 1] and rounded to uint8 (BasicSR ``tensor2img``); PSNR / SSIM are
BasicSR's on RGB with crop 0 — the ``standard`` protocol, as the reference
validates during training. Student predictions draw their prior noise from
``fold_in(key(seed), image_index)``, so a run's numbers are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import inference
from restorect_jax import metrics
from restorect_jax import steps as steps_lib
from restorect_jax.models import layers

Predict = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


# Jitted once per process; the modules and step count are static (hashable
# Flax dataclasses), so repeated evals during training reuse the compilation.
_teacher_predict = jax.jit(steps_lib.teacher_predict,
                           static_argnames=('teacher', 'decom'))
_student_predict = jax.jit(steps_lib.student_predict,
                           static_argnames=('student', 'decom', 'rf_steps'))


def make_predict(kind: str, params: Any, frozen: dict[str, Any], *,
                 teacher=None, student=None, decom=None, rf_steps: int = 5,
                 seed: int = 0) -> Predict:
  """``predict(index, lq, gt) -> out`` for ``'input'``, ``'teacher'``, ``'student'``.

  Images are (H, W, 3) float32 in [0, 1]; ``gt`` is used only by the
  (privileged) teacher.
  """
  if kind == 'input':
    return lambda i, lq, gt: lq
  if kind == 'teacher':
    def predict(i, lq, gt):
      x, (h, w) = layers.reflect_pad_to_multiple(jnp.asarray(lq)[None], 8)
      g, _ = layers.reflect_pad_to_multiple(jnp.asarray(gt)[None], 8)
      out = _teacher_predict(params, x, g, frozen, teacher=teacher,
                             decom=decom)
      return np.asarray(out)[0, :h, :w]
    return predict
  if kind == 'student':
    root = jax.random.PRNGKey(seed)
    def predict(i, lq, gt):
      del gt
      x, (h, w) = layers.reflect_pad_to_multiple(jnp.asarray(lq)[None], 8)
      nr, ni = inference.draw_prior_noise(jax.random.fold_in(root, i), 1)
      out = _student_predict(params, x, frozen, nr, ni, student=student,
                             decom=decom, rf_steps=rf_steps)
      return np.asarray(out)[0, :h, :w]
    return predict
  raise ValueError(f'Unknown predictor {kind!r}.')


def make_irflow_predict(params: Any, model, *, num_steps: int,
                        sampler: str = 'euler', channel_order: str = 'bgr',
                        base: bool = False) -> Predict:
  """``predict(index, lq, gt) -> out`` for an IR-Flow network.

  The evaluate/restore CLIs' predictor (reflect-pad to a multiple of 16,
  sample, crop); the sampler is deterministic, so the index is unused.
  """
  from restorect_jax import predictors  # pylint: disable=g-import-not-at-top
  p = predictors.irflow_predictor(
      params['model'], model=model, info={}, channel_order=channel_order,
      sampler=sampler, base=base, depth=model.depth)

  def predict(i, lq, gt):
    del i, gt
    return p.restore(lq, steps=int(num_steps), rng=None)
  return predict


def evaluate(predict: Predict, records: Iterable[dict[str, Any]], *,
             max_images: int = 0, keep_outputs: int = 0,
             crop_border: int = 0) -> dict[str, Any]:
  """PSNR / SSIM (RGB, rounded uint8) of ``predict`` over paired records.

  Args:
    predict: from :func:`make_predict` or :func:`make_irflow_predict`.
    records: dicts with ``lq``, ``gt`` (H, W, 3) float in [0, 1], ``name``.
    max_images: stop after this many (0: all).
    keep_outputs: return the first N ``(name, lq, out, gt)`` for grids.
    crop_border: pixels dropped on each side (0: the ``standard``
      protocol; IR-Flow's test script uses 1).

  Returns:
    ``{'psnr', 'ssim', 'psnr_std', 'ssim_std', 'n', 'per_image',
    'outputs'}``.
  """
  rows, outputs = [], []
  for i, rec in enumerate(records):
    if max_images and i >= max_images:
      break
    lq = np.asarray(rec['lq'], np.float32)
    gt = np.asarray(rec['gt'], np.float32)
    out = np.clip(predict(i, lq, gt), 0.0, 1.0)
    o8, g8 = metrics.to_uint8(out, 'round'), metrics.to_uint8(gt, 'round')
    name = rec.get('name', str(i))
    if isinstance(name, bytes):
      name = name.decode()
    rows.append({'name': str(name),
                 'psnr': metrics.psnr(o8, g8, crop_border=crop_border),
                 'ssim': metrics.ssim(o8, g8, crop_border=crop_border)})
    if len(outputs) < keep_outputs:
      outputs.append((str(name), lq, out, gt))
  if not rows:
    raise ValueError('The evaluation split is empty.')
  p = np.array([r['psnr'] for r in rows], np.float64)
  s = np.array([r['ssim'] for r in rows], np.float64)
  return {'psnr': float(p.mean()), 'ssim': float(s.mean()),
          'psnr_std': float(p.std()), 'ssim_std': float(s.std()),
          'n': len(rows), 'per_image': rows, 'outputs': outputs}
