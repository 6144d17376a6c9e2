r"""``python -m restorect_jax.evaluate``: score a model under named protocols.

Examples::

  # A trained run on its own eval split, two protocols, a steps sweep over
  # three seeds (the RestoRect sampler is stochastic: mean ± std over seeds):
  python -m restorect_jax.evaluate --checkpoint runs/demo/s2 \
    --lq_dir data/test/low --gt_dir data/test/high \
    --protocols standard,restorect_files --rf_steps 1,2,3,4,5 --seeds 0,1,2 \
    --output_dir runs/demo/s2/eval
  # A benchmark by name, laid out as the public download unpacks:
  python -m restorect_jax.evaluate --model irflow --weights irflow.pth \
    --dataset derain --data_dir /data/Rain100L --protocols irflow \
    --rf_steps 1,2,3,4,5,10,20,50 --output_dir eval/rain100l

Every image is restored at full resolution exactly as the references test
(reflect-pad to the model multiple, crop back; no buckets, no tiling), then
scored by each protocol (``restorect_jax.protocols``; each prints its
one-line description with the results). Protocols name further metrics
(LPIPS, NIQE, BRISQUE, UIQM, UCIQE, FID); ``--extra_metrics=auto`` computes
them, and one whose weights are missing is reported as unavailable while the
others still run. Without ``--gt_dir`` the set is unpaired: only
no-reference metrics are reported (an output is never scored against its
own input).

Writes ``per_image.csv``, ``summary.json`` (protocols and descriptions,
dataset manifest hash, checkpoint hash, steps, seeds, results) and, for
sweeps, ``steps_vs_<metric>.png``; prints the table. Unreadable files are
reported by name and skipped, and the command exits non-zero at the end.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from absl import app
from absl import flags

from restorect_jax import cli_common

_DATASET = flags.DEFINE_string(
    'dataset', 'folder', 'A named eval split laid out as the public download '
    '(RestoRect: lol_v1, lol_v2_real, lol_v2_syn, demo; IR-Flow tasks: '
    'derain, raindrop, denoise, dehaze, deblur, sr) under --data_dir, or '
    '"folder" with --lq_dir / --gt_dir.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Root of --dataset.')
_SPLIT = flags.DEFINE_enum('split', 'test', ['test', 'train'],
                           'Which split of --dataset.')
_LQ_DIR = flags.DEFINE_string('lq_dir', '', 'Folder of degraded inputs.')
_GT_DIR = flags.DEFINE_string(
    'gt_dir', '', 'Folder of ground truths (empty: unpaired set).')
_PREFIX = flags.DEFINE_boolean(
    'prefix_match', False, 'Pair files by the name part before the first _ '
    '(the RestoRect evaluation script\'s rule).')
_NOISE = flags.DEFINE_float(
    'noise_sigma', None, 'Synthesise lq = gt + σ/255·N(0,1) (seeded per '
    'image and seed); default: the task\'s (denoise: 25), else none.')
_PROTOCOLS = flags.DEFINE_list('protocols', ['standard'],
                               'Protocol names (restorect_jax.protocols).')
_STEPS = flags.DEFINE_list(
    'rf_steps', [], 'Sampling steps to sweep (default: 5 RestoRect, 1 '
    'IR-Flow).')
flags.DEFINE_alias('steps', 'rf_steps')
_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Seeds (stochastic models).')
_EXTRA = flags.DEFINE_string(
    'extra_metrics', 'auto', '"auto": the protocols\' own extra metrics; '
    '"none"; or a comma list (lpips_alex, lpips_vgg, niqe, brisque, uiqm, '
    'uciqe, fid).')
_FID_WEIGHTS = flags.DEFINE_string(
    'fid_weights', '', 'Inception-v3 weights for FID (torchvision '
    'inception_v3 ImageNet .pth, or pytorch-fid pt_inception .pth).')
_FID_FLAVOUR = flags.DEFINE_enum(
    'fid_flavour', 'torchvision', ['torchvision', 'pytorch_fid'],
    'torchvision: ImageNet Inception-v3 as RestoRect\'s evaluation.py; '
    'pytorch_fid: the standard FID Inception (pt_inception-2015-12-05).')
_SCORE_INPUT = flags.DEFINE_boolean(
    'score_input', False, 'Also score the degraded input, reported as '
    'rf_steps 0 (the baseline every output should beat).')
_MAX_IMAGES = flags.DEFINE_integer('max_images', 0, 'Stop after N (0: all).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None,
                                  'Where the CSV / JSON / plot go.')
_SAVE_IMAGES = flags.DEFINE_boolean('save_images', False,
                                    'Also write the restored PNGs.')


def _resolve_data() -> tuple[str, str, float]:
  """(lq_dir, gt_dir, noise σ on [0, 1]) from the data flags."""
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  name = _DATASET.value
  sigma = 0.0
  if name == 'folder':
    if not _LQ_DIR.value:
      raise app.UsageError('--dataset=folder needs --lq_dir (and --gt_dir '
                           'for a paired set).')
    lq, gt = _LQ_DIR.value, _GT_DIR.value
  else:
    if name in config_lib.IRFLOW_TASKS:
      folders = config_lib.IRFLOW_TASKS[name]['folders']
      sigma = config_lib.IRFLOW_TASKS[name]['noise_sigma']
    elif name in config_lib.DATASETS:
      folders = config_lib.DATASETS[name]
    else:
      raise app.UsageError(
          f'Unknown --dataset {name!r}; known: folder, '
          f'{", ".join(sorted(set(config_lib.DATASETS) - {"folder"}))}, '
          f'{", ".join(sorted(config_lib.IRFLOW_TASKS))}.')
    if not _DATA_DIR.value:
      raise app.UsageError(f'--dataset={name} needs --data_dir.')
    pair = folders[2:] if _SPLIT.value == 'test' else folders[:2]
    lq, gt = (os.path.join(_DATA_DIR.value, p) for p in pair)
  if _NOISE.value is not None:
    sigma = _NOISE.value / 255.0
  return lq, gt, sigma


class _Images:
  """Paired (or unpaired) eval images; bad files are recorded, not raised."""

  def __init__(self, lq_dir: str, gt_dir: str, *, prefix_match: bool):
    from restorect_jax import image_io  # pylint: disable=g-import-not-at-top
    from restorect_jax import input_pipeline  # pylint: disable=g-import-not-at-top
    self.paired = bool(gt_dir)
    if self.paired:
      src = input_pipeline.PairedFolderSource(
          lq_dir, gt_dir, prefix_match=prefix_match, validate=False)
      self.items = list(zip(src.names, src.lq_paths, src.gt_paths))
    else:
      paths = image_io.list_inputs(lq_dir)
      self.items = [(os.path.splitext(os.path.basename(p))[0], p, None)
                    for p in paths]
    # Denoising sets use one folder as both lq and gt: hash each file once.
    self.files = sorted({p for _, lq, gt in self.items for p in (lq, gt)
                         if p})

  def read(self, lq_path: str, gt_path: str | None):
    from restorect_jax import image_io  # pylint: disable=g-import-not-at-top
    lq = image_io.uint8_to_float32(image_io.read_image_uint8(lq_path))
    gt = None
    if gt_path:
      gt = image_io.uint8_to_float32(image_io.read_image_uint8(gt_path))
      if gt.shape != lq.shape:
        raise ValueError(f'Size mismatch: {lq_path} is {lq.shape[:2]} but '
                         f'{gt_path} is {gt.shape[:2]}.')
    return lq, gt


def _extra_requests(protocol, paired: bool) -> list[Any]:
  """The extra-metric requests to compute for ``protocol``."""
  from restorect_jax import protocols as protocols_lib  # pylint: disable=g-import-not-at-top
  spec = _EXTRA.value.strip()
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


def evaluate(predictor, images: _Images, protocols: list[Any], *,
             steps_list: list[int], seeds: list[int | None],
             noise_sigma: float, max_images: int, extra: 'ExtraMetrics',
             save_dir: str = '') -> tuple[list[Any], list[str]]:
  """Restores and scores every image; returns (rows, failures)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from restorect_jax import image_io  # pylint: disable=g-import-not-at-top
  from restorect_jax import predictors  # pylint: disable=g-import-not-at-top
  from restorect_jax import reporting  # pylint: disable=g-import-not-at-top
  rows, failures = [], []
  items = images.items[:max_images] if max_images else images.items
  total = len(steps_list) * len(seeds) * len(items)
  done, t0 = 0, time.time()
  for steps in steps_list:
    for seed in seeds:
      fid_sets = {p.name: ([], []) for p in protocols}
      for name, lq_path, gt_path in items:
        done += 1
        try:
          lq, gt = images.read(lq_path, gt_path)
        except (ValueError, OSError) as e:
          if (steps, seed) == (steps_list[0], seeds[0]):
            failures.append(f'{lq_path}: {e}')
            print(f'FAILED {lq_path}: {e}', file=sys.stderr)
          continue
        if noise_sigma:
          if gt is None:
            raise app.UsageError('--noise_sigma needs a paired set (the '
                                 'noisy input is synthesised from the GT).')
          rng = np.random.default_rng([seed or 0,
                                       predictors.name_tag(name)])
          lq = (gt + np.float32(noise_sigma) * rng.standard_normal(
              gt.shape).astype(np.float32))
        if steps == 0:  # --score_input: the degraded input itself
          out = np.clip(lq, 0.0, 1.0)
        else:
          key = predictors.image_rng(seed or 0, name)
          out = predictor.restore(lq, steps=steps, rng=key)
        if save_dir:
          image_io.write_png(out, os.path.join(
              save_dir, f'steps{steps}_seed{seed}', name + '.png'),
                             overwrite=True)
        for p in protocols:
          res = p.evaluate(out, gt)
          values = dict(res.metrics)
          values.update(extra.per_image(p.name, res, fid_sets[p.name]))
          rows.append(reporting.Row(name, p.name, steps, seed, values))
        print(f'\r[{done}/{total}] steps {steps} seed {seed} {name} '
              f'({time.time() - t0:.0f} s)', end='', file=sys.stderr)
      for p in protocols:
        fid = extra.dataset_level(*fid_sets[p.name])
        if fid:
          rows.append(reporting.Row(reporting.DATASET_ROW, p.name, steps,
                                    seed, fid))
  print(file=sys.stderr)
  return rows, failures


class ExtraMetrics:
  """Computes the protocols' extra metrics; unavailable ones are noted once.

  Per-image metrics (LPIPS, NIQE, BRISQUE, UIQM, UCIQE) are computed with
  the images :meth:`restorect_jax.protocols.Prepared.images_for` returns;
  FID collects those images and is one number per (protocol, steps, seed).
  """

  def __init__(self, requests_by_protocol: dict[str, list[Any]],
               fid_weights: str = '', fid_flavour: str = 'torchvision'):
    self.requests = requests_by_protocol
    self.fid_weights = fid_weights
    self.fid_flavour = fid_flavour
    self.unavailable: dict[str, str] = {}
    self._fns: dict[str, Any] = {}

  def _fn(self, name: str):
    if name in self.unavailable:
      return None
    if name not in self._fns:
      from restorect_jax.iqa import registry  # pylint: disable=g-import-not-at-top
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
    for req in self.requests[protocol]:
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
    from restorect_jax.iqa import fid  # pylint: disable=g-import-not-at-top
    try:
      value = fid.fid(gts, preds, flavour=self.fid_flavour,
                      weights=self.fid_weights or None)
    except (FileNotFoundError, ValueError) as e:
      self.unavailable['fid'] = str(e)
      print(f'fid: unavailable: {e}', file=sys.stderr)
      return {}
    return {'fid': float(value)}


def main(argv):
  cli_common.start(argv)
  from restorect_jax import predictors  # pylint: disable=g-import-not-at-top
  from restorect_jax import protocols as protocols_lib  # pylint: disable=g-import-not-at-top
  from restorect_jax import reporting  # pylint: disable=g-import-not-at-top
  try:
    protocols = [protocols_lib.get(n) for n in _PROTOCOLS.value]
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  lq_dir, gt_dir, sigma = _resolve_data()
  try:
    images = _Images(lq_dir, gt_dir, prefix_match=_PREFIX.value)
    predictor = cli_common.load_predictor()
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'error: {e}')
  steps_list = [int(s) for s in _STEPS.value] or [
      cli_common.default_steps(predictor.kind)]
  if min(steps_list) < 1:
    raise app.UsageError('--rf_steps must be >= 1 (use --score_input for '
                         'the degraded input).')
  if _SCORE_INPUT.value:
    steps_list = [0] + steps_list
  seeds: list[int | None] = [int(s) for s in _SEEDS.value]
  if not predictor.stochastic:
    seeds = [None]  # deterministic sampler: one run per step count
  extra = ExtraMetrics({p.name: _extra_requests(p, images.paired)
                        for p in protocols}, _FID_WEIGHTS.value,
                       _FID_FLAVOUR.value)
  out_dir = _OUTPUT_DIR.value
  os.makedirs(out_dir, exist_ok=True)
  print(f'Model: {predictors.describe(predictor)}')
  print(f'Data: {lq_dir} ({"paired with " + gt_dir if gt_dir else "unpaired"}'
        f', {len(images.items)} images{", σ=%.4g" % sigma if sigma else ""})')
  rows, failures = evaluate(
      predictor, images, protocols, steps_list=steps_list, seeds=seeds,
      noise_sigma=sigma, max_images=_MAX_IMAGES.value, extra=extra,
      save_dir=os.path.join(out_dir, 'images') if _SAVE_IMAGES.value else '')
  if not rows:
    print('No image could be evaluated.', file=sys.stderr)
    sys.exit(1)
  reporting.write_csv(os.path.join(out_dir, 'per_image.csv'), rows)
  summary = reporting.summarize(rows)
  reporting.write_summary_json(
      os.path.join(out_dir, 'summary.json'), summary, protocols=protocols,
      manifest_sha256=reporting.manifest_hash(images.files),
      checkpoint_sha256=predictor.info.get('sha256'), rf_steps=steps_list,
      seeds=seeds, dataset=_DATASET.value if _DATASET.value != 'folder' else
      lq_dir, extra={'model': predictor.info, 'argv': sys.argv,
                     'noise_sigma': sigma, 'failed': failures,
                     'unavailable_metrics': extra.unavailable})
  if len(steps_list) > 1:
    for metric in ('psnr', 'ssim'):
      if any(e.metric == metric for e in summary):
        reporting.plot_steps_vs_quality(
            summary, os.path.join(out_dir, f'steps_vs_{metric}.png'), metric)
  print(reporting.format_table(summary))
  for name, why in extra.unavailable.items():
    print(f'{name}: not computed ({why})')
  print(f'Wrote {out_dir}/per_image.csv, summary.json')
  if failures:
    print(f'{len(failures)} unreadable files were skipped:', file=sys.stderr)
    for f in failures:
      print(f'  {f}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['output_dir'])
  app.run(main)
