"""The protocols' extra metrics (LPIPS, NIQE, BRISQUE, UIQM, UCIQE, FID).

A metric whose weights are missing is reported once as unavailable while
the others still run.
"""

from __future__ import annotations

import sys
from typing import Any

from restorect_jax.evaluation import protocols as protocols_lib


def requests_for(protocol: protocols_lib.Protocol, paired: bool,
                 spec: str = 'auto') -> list[protocols_lib.MetricRequest]:
  """The extra-metric requests to compute for ``protocol``.

  Args:
    protocol: the protocol.
    paired: whether the set has ground truths (else no-reference only).
    spec: ``'auto'`` (the protocol's own), ``'none'``, or a comma list.
  """
  spec = spec.strip()
  if spec == 'none':
    return []
  reqs = list(protocol.extra_metrics if paired else
              protocol.no_reference_metrics)
  if spec != 'auto':
    wanted = [s.strip() for s in spec.split(',') if s.strip()]
    have = {r.name for r in reqs}
    reqs = [r for r in reqs if r.name in wanted] + [
        protocols_lib.MetricRequest(n) for n in wanted if n not in have]
    if not paired:
      reqs = [r for r in reqs if not r.needs_gt]
  return reqs


class ExtraMetrics:
  """Computes the protocols' extra metrics; unavailable ones are noted once.

  Per-image metrics (LPIPS, NIQE, BRISQUE, UIQM, UCIQE) are computed with
  the images :meth:`restorect_jax.evaluation.protocols.Prepared.images_for` returns;
  FID collects those images and is one number per (protocol, steps, seed).
  """

  def __init__(self, requests_by_protocol: dict[str, list[Any]] | None = None,
               fid_weights: str = '', fid_flavour: str = 'torchvision'):
    self.requests = requests_by_protocol or {}
    self.fid_weights = fid_weights
    self.fid_flavour = fid_flavour
    self.unavailable: dict[str, str] = {}
    self._fns: dict[str, Any] = {}

  def _fn(self, name: str):
    if name in self.unavailable:
      return None
    if name not in self._fns:
      from restorect_jax.evaluation.iqa import registry  # pylint: disable=g-import-not-at-top
      self._fns[name] = registry.METRICS[name]
    return self._fns[name]

  def _call(self, name: str, pred, gt):
    """One metric value, or None (noting why) if it cannot run here."""
    fn = self._fn(name)
    if fn is None:
      return None
    try:
      # The protocol's request already applied its crop and channel order.
      return float(fn(pred, gt))
    except (FileNotFoundError, ImportError) as e:
      self.unavailable[name] = str(e)
      print(f'{name}: unavailable: {e}', file=sys.stderr)
      return None

  def per_image(self, protocol: str, result, fid_set) -> dict[str, float]:
    """The per-image extra metrics of ``protocol`` for one result."""
    out = {}
    paired = result.prepared.gt is not None
    for req in self.requests.get(protocol, ()):
      if req.needs_gt and not paired:
        continue
      if req.name == 'fid':
        pred, gt = result.prepared.images_for(req)
        fid_set[0].append(pred)
        fid_set[1].append(gt)
        continue
      pred, gt = result.prepared.images_for(req)
      value = self._call(req.name, pred, gt if req.needs_gt else None)
      if value is not None:
        out[req.name] = value
    return out

  def dataset_level(self, preds, gts) -> dict[str, float]:
    if not preds or 'fid' in self.unavailable:
      return {}
    from restorect_jax.evaluation.iqa import fid  # pylint: disable=g-import-not-at-top
    try:
      value = fid.fid(gts, preds, flavour=self.fid_flavour,
                      weights=self.fid_weights or None)
    except (FileNotFoundError, ValueError) as e:
      self.unavailable['fid'] = str(e)
      print(f'fid: unavailable: {e}', file=sys.stderr)
      return {}
    return {'fid': float(value)}


