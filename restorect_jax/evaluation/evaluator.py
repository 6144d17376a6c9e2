"""The one evaluator: restore each image through a predictor, score it
under named protocols. Training (built from ``config.evals``) and the
evaluate CLI both use it, so training logs report what the CLI reports.

Every image is restored at full resolution exactly as the references test
(reflect-pad to the model multiple, crop back; no buckets, no tiling) by
:meth:`restorect_jax.inference.predictor.Predictor.predict`, with the prior
noise keyed by the image's name. Denoising sets synthesise their input as
``gt + σ·N(0, 1)`` seeded by (seed, image name), so evaluations of
different checkpoints see the same noisy inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ml_collections
import numpy as np

from restorect_jax.evaluation import extra_metrics
from restorect_jax.evaluation import protocols as protocols_lib
from restorect_jax.evaluation import reporting
from restorect_jax.inference.predictor import Predictor
from restorect_jax.inference.predictor import name_tag


def noisy_input(gt: np.ndarray, sigma: float, seed: int | None,
                name: str) -> np.ndarray:
  """``gt + σ·N(0, 1)`` (not clipped), seeded by (seed, image name)."""
  rng = np.random.default_rng([seed or 0, name_tag(name)])
  noise = rng.standard_normal(gt.shape).astype(np.float32)
  return np.asarray(gt, np.float32) + np.float32(sigma) * noise


@dataclasses.dataclass
class Output:
  """One restored image (kept for image grids)."""
  name: str
  lq: np.ndarray
  out: np.ndarray
  gt: np.ndarray | None


@dataclasses.dataclass
class EvalResult:
  """Per-image rows, the (protocol, metric) means and kept outputs."""
  rows: list[reporting.Row]
  means: dict[str, dict[str, float]]
  n: int
  outputs: list[Output]
  failures: list[str]

  def flat(self) -> dict[str, float]:
    """``{'<protocol>/<metric>': mean}`` for metric writers."""
    return {f'{p}/{m}': v for p, ms in self.means.items()
            for m, v in ms.items()}


class Evaluator:
  """Scores a predictor on records under protocols.

  Args:
    protocols: protocol names (``restorect_jax.evaluation.protocols``).
    max_images: stop after this many images (0: all).
    keep_outputs: keep the first N restored images (for grids).
    noise_sigma: synthesise noisy inputs from the GT (denoising sets).
    extra: extra metrics to compute (None: the paired metrics only).
  """

  def __init__(self, protocols: Sequence[str], *, max_images: int = 0,
               keep_outputs: int = 0, noise_sigma: float = 0.0,
               extra: extra_metrics.ExtraMetrics | None = None):
    if not protocols:
      raise ValueError('The evaluator needs at least one protocol.')
    self.protocols = [protocols_lib.get(p) for p in protocols]
    self.max_images = max_images
    self.keep_outputs = keep_outputs
    self.noise_sigma = noise_sigma
    self.extra = extra or extra_metrics.ExtraMetrics()

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, *,
                  noise_sigma: float = 0.0) -> 'Evaluator':
    """The training evaluator of ``config.evals``."""
    e = config.evals
    return cls(tuple(e.protocols), max_images=e.max_images,
               keep_outputs=e.get('keep_outputs', 2),
               noise_sigma=noise_sigma)

  def run(self, predictor: Predictor, records: Iterable[dict[str, Any]], *,
          steps: int | None = None, seed: int | None = 0,
          on_image: Callable[[list[reporting.Row]], None] | None = None,
          save: Callable[[str, np.ndarray], None] | None = None,
          continue_on_error: bool = False) -> EvalResult:
    """Restores and scores every record.

    Args:
      predictor: the model.
      records: dicts with ``lq``, ``gt`` (None: unpaired) as (H, W, 3)
        float in [0, 1] and ``name``; a record with ``error`` set is a file
        that could not be read, reported and skipped.
      steps: sampling steps (the predictor's default when None); 0 scores
        the degraded input itself.
      seed: the seed of the prior noise (None for a deterministic model).
      on_image: called with each image's rows as soon as they exist.
      save: called with (name, restored image).
      continue_on_error: an image whose restoration or scoring fails is
        reported in ``failures`` by name and the rest continue (the CLI);
        otherwise the error propagates (training).
    """
    if steps is None:
      steps = predictor.default_steps
    if not predictor.stochastic:
      seed = None
    rows, outputs, failures = [], [], []
    fid_sets = {p.name: ([], []) for p in self.protocols}
    n = 0
    for rec in records:
      if self.max_images and n >= self.max_images:
        break
      name = rec['name']
      name = name.decode() if isinstance(name, bytes) else str(name)
      if rec.get('error'):
        failures.append(f'{name}: {rec["error"]}')
        continue
      gt = rec.get('gt')
      gt = None if gt is None else np.asarray(gt, np.float32)
      lq = np.asarray(rec['lq'], np.float32)
      if self.noise_sigma:
        if gt is None:
          raise ValueError('Synthetic noise needs a paired set (the noisy '
                           'input is made from the GT).')
        lq = noisy_input(gt, self.noise_sigma, seed, name)
      try:
        image_rows, out = self._one(predictor, name, lq, gt, steps, seed,
                                    fid_sets)
      except Exception as e:  # pylint: disable=broad-except
        if not continue_on_error:
          raise
        failures.append(f'{name}: {type(e).__name__}: {e}'.splitlines()[0])
        continue
      n += 1
      if save is not None:
        save(name, out)
      if len(outputs) < self.keep_outputs:
        outputs.append(Output(name, lq, out, gt))
      rows.extend(image_rows)
      if on_image is not None:
        on_image(image_rows)
    for p in self.protocols:
      fid = self.extra.dataset_level(*fid_sets[p.name])
      if fid:
        rows.append(reporting.Row(reporting.DATASET_ROW, p.name, steps,
                                  seed, fid))
    return EvalResult(rows, _means(rows), n, outputs, failures)

  def _one(self, predictor, name, lq, gt, steps, seed, fid_sets):
    """Restores and scores one image: (rows, restored image)."""
    if steps == 0:
      out = np.clip(lq, 0.0, 1.0)
    else:
      out = predictor.predict(lq, name=name, steps=steps, seed=seed or 0,
                              gt=gt if predictor.needs_gt else None)
    image_rows = []
    for p in self.protocols:
      res = p.evaluate(out, gt)
      values = dict(res.metrics)
      values.update(self.extra.per_image(p.name, res, fid_sets[p.name]))
      image_rows.append(reporting.Row(name, p.name, steps, seed, values))
    return image_rows, out


def _means(rows: Sequence[reporting.Row]) -> dict[str, dict[str, float]]:
  sums: dict[str, dict[str, list[float]]] = {}
  for r in rows:
    for m, v in r.metrics.items():
      sums.setdefault(r.protocol, {}).setdefault(m, []).append(float(v))
  return {p: {m: float(np.mean(v)) for m, v in ms.items()}
          for p, ms in sums.items()}
