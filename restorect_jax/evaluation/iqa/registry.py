"""Per-image metrics by name, and running whichever of them can run.

Every entry of :data:`METRICS` is called as ``metric(pred, gt=None, **opts)``
with ``(H, W, 3)`` RGB images, uint8 (0..255) or float (0..1), and returns a
float. Full-reference metrics need ``gt``; no-reference metrics ignore it.

========== ========= ======== =================================================
name       reference better   what
========== ========= ======== =================================================
lpips_alex full      lower    LPIPS v0.1, AlexNet (IR-Flow)
lpips_vgg  full      lower    LPIPS v0.1, VGG16 (RestoRect: swap_channels=True)
niqe       none      lower    NIQE, MATLAB/BasicSR (RestoRect: crop 5, swap Y)
brisque    none      lower    BRISQUE as piq (LIVE SVR)
uiqm       none      higher   UIQM, RestoRect variant
uciqe      none      higher   UCIQE, RestoRect variant
========== ========= ======== =================================================

FID is a set-level metric: see :func:`restorect_jax.evaluation.iqa.fid.fid`.
:data:`RESTORECT_OPTIONS` holds the options that reproduce RestoRect's
``evals/evaluation.py``; ``IRFLOW_OPTIONS`` those of IR-Flow's ``test.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from restorect_jax.evaluation.iqa import brisque as _brisque
from restorect_jax.evaluation.iqa import lpips as _lpips
from restorect_jax.evaluation.iqa import niqe as _niqe
from restorect_jax.evaluation.iqa import underwater as _underwater


@dataclasses.dataclass(frozen=True)
class Metric:
  """A named per-image metric with a uniform call signature."""
  name: str
  fn: Callable[..., float]
  needs_reference: bool
  higher_is_better: bool
  description: str

  def __call__(self, pred: Any, gt: Any = None, **opts: Any) -> float:
    """Scores ``pred`` (against ``gt`` for full-reference metrics)."""
    if self.needs_reference:
      if gt is None:
        raise ValueError(f'{self.name} is a full-reference metric: pass gt.')
      return float(self.fn(pred, gt, **opts))
    return float(self.fn(pred, **opts))


def _lpips_net(net: str) -> Callable[..., float]:
  def fn(pred: Any, gt: Any, swap_channels: bool = False) -> float:
    return _lpips.lpips(pred, gt, net=net, swap_channels=swap_channels)
  return fn


METRICS: dict[str, Metric] = {
    m.name: m for m in (
        Metric('lpips_alex', _lpips_net('alex'), True, False,
               'LPIPS v0.1 with AlexNet features'),
        Metric('lpips_vgg', _lpips_net('vgg'), True, False,
               'LPIPS v0.1 with VGG16 features'),
        Metric('niqe', _niqe.niqe, False, False,
               'NIQE (MATLAB pristine model, BasicSR conventions)'),
        Metric('brisque', _brisque.brisque, False, False,
               'BRISQUE (piq features, LIVE SVR)'),
        Metric('uiqm', _underwater.uiqm, False, True,
               'UIQM (RestoRect variant)'),
        Metric('uciqe', _underwater.uciqe, False, True,
               'UCIQE (RestoRect variant)'),
    )
}

RESTORECT_OPTIONS: dict[str, dict[str, Any]] = {
    'lpips_vgg': {'swap_channels': True},
    'niqe': {'crop_border': 5, 'swapped_y': True},
}
IRFLOW_OPTIONS: dict[str, dict[str, Any]] = {'lpips_alex': {}}


def compute_available(
    names: Iterable[str], pred: Any, gt: Any = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
  """Runs each named metric; failures are reported, not raised.

  A metric whose weights or model file is missing (``FileNotFoundError``),
  whose optional dependency is absent (``ImportError``), or that rejects
  the input (``ValueError``), lands in the error dict; the others still run.

  Args:
    names: Keys of :data:`METRICS`.
    pred: The image to score.
    gt: The reference, for full-reference metrics (these fail without it).
    options: Per-metric keyword options, e.g. :data:`RESTORECT_OPTIONS`.

  Returns:
    ``(results, errors)``: name -> value, name -> error message.
  """
  options = options or {}
  results: dict[str, float] = {}
  errors: dict[str, str] = {}
  for name in names:
    if name not in METRICS:
      errors[name] = f'unknown metric; known: {", ".join(sorted(METRICS))}'
      continue
    try:
      results[name] = METRICS[name](pred, gt, **dict(options.get(name, {})))
    except (FileNotFoundError, ImportError, ValueError) as e:
      errors[name] = f'{type(e).__name__}: {e}'
  return results, errors
