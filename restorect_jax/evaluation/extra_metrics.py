"""The protocols' extra metrics (LPIPS, NIQE, BRISQUE, UIQM, UCIQE, FID).

A metric whose weights are missing is reported once as unavailable while
the others still run. :meth:`ExtraMetrics.preload` opens and checks every
requested weight file before any image is restored: a damaged or hostile
file (or a ``--fid_weights`` that does not exist) is an error naming it.
"""

from __future__ import annotations

import os
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


def _niqe_path() -> str:
  """The NIQE model file :func:`niqe.load_params` reads by default."""
  from restorect_jax.evaluation.iqa import _common  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation.iqa import niqe  # pylint: disable=g-import-not-at-top
  path = os.environ.get(niqe.ENV_VAR) or _common.package_file(
      'basicsr', 'metrics', 'niqe_pris_params.npz')
  if path is None:
    niqe.load_params()  # raises FileNotFoundError saying how to get it
  return str(path)


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

  def names(self) -> list[str]:
    """The requested metric names, sorted."""
    return sorted({r.name for reqs in self.requests.values() for r in reqs})

  def preload(self) -> None:
    """Opens and checks every requested metric's weights now.

    Called before the first image, so a bad weight file fails the command
    at once instead of after every image was restored. A metric whose
    weights are not installed (and were not named on the command line) is
    noted in :attr:`unavailable`, as at scoring time.

    Raises:
      ValueError: an unknown metric name, or a weight file that exists but
        cannot be used (named in the message).
      FileNotFoundError: ``fid_weights`` was given and does not exist.
    """
    from restorect_jax.evaluation.iqa import _common  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import registry  # pylint: disable=g-import-not-at-top
    known = set(registry.METRICS) | {'fid'}
    unknown = [n for n in self.names() if n not in known]
    if unknown:
      raise ValueError(f'Unknown extra metric(s) {", ".join(unknown)}; '
                       f'known: {", ".join(sorted(known))}.')
    for name in self.names():
      source = self._weights(name)
      if source is None or name in self.unavailable:
        continue
      locate, load = source
      try:
        path = str(locate())
      except FileNotFoundError as e:
        if name == 'fid' and self.fid_weights:
          raise
        self.unavailable[name] = str(e)
        print(f'{name}: unavailable: {e}', file=sys.stderr)
        continue
      _common.load_checked(path, f'{name} weights', load)

  def _weights(self, name: str):
    """``(locate, load)`` of a metric's weight file, or None if it has none.

    ``locate()`` gives the path (FileNotFoundError if absent); ``load()``
    reads it into the cache the metric uses when scoring.
    """
    from restorect_jax.evaluation.iqa import brisque  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import fid  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import lpips  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import niqe  # pylint: disable=g-import-not-at-top
    if name in ('lpips_alex', 'lpips_vgg'):
      net = name.split('_')[1]
      return (lambda: lpips.weights_path(net), lambda: lpips.get_lpips(net))
    # pylint: disable=protected-access
    # The loaders below fill the caches the metrics read when scoring.
    if name == 'niqe':
      return _niqe_path, niqe._default_params
    if name == 'brisque':
      return brisque.model_path, brisque._default_model
    if name == 'fid':
      locate = lambda: fid.weights_path(self.fid_flavour,
                                        self.fid_weights or None)
      # fid.fid's own call: (flavour, path, batch_size=16).
      return locate, lambda: fid._extractor(self.fid_flavour, locate(), 16)
    return None

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


