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
scored by each protocol (``restorect_jax.evaluation.protocols``; each prints its
one-line description with the results). Protocols name further metrics
(LPIPS, NIQE, BRISQUE, UIQM, UCIQE, FID); ``--extra_metrics=auto`` computes
them, and one whose weights are missing is reported as unavailable while the
others still run. Without ``--gt_dir`` the set is unpaired: only
no-reference metrics are reported (an output is never scored against its
own input).

Each image's rows are appended to ``per_image.jsonl`` (flushed) as soon as
it is scored; at the end ``per_image.csv``, ``summary.json`` (protocols and
descriptions, dataset manifest hash, checkpoint hash, steps, seeds,
results) and, for sweeps, ``steps_vs_<metric>.png`` are written from them
and the table is printed. An image that fails (unreadable, too small,
non-finite output) is reported by name and skipped, the rest continue, and
the command exits non-zero at the end. Restoring goes through the same
predictor and evaluator as training's evaluation (same numbers).

Flags, data, the output folder and every weight file (``--weights``,
``--decom``, a run's checkpoint, ``--fid_weights`` and the LPIPS / NIQE /
BRISQUE models of the requested metrics) are checked before the first
image: a bad one is one ``error:`` line naming it (exit status 2 for a
wrong flag, 1 otherwise; ``--verbosity=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags

from restorect_jax import cli_common
from restorect_jax import cli_errors

flags.adopt_module_key_flags(cli_common)

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
_PROTOCOLS = flags.DEFINE_list(
    'protocols', ['standard'],
    'Protocol names (restorect_jax.evaluation.protocols).')
_STEPS = flags.DEFINE_list(
    'rf_steps', [], 'Sampling steps to sweep (default: the model\'s; 5 '
    'RestoRect, 1 IR-Flow).')
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
_MAX_IMAGES = flags.DEFINE_integer('max_images', 0, 'Stop after N (0: all).',
                                   lower_bound=0)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None,
                                  'Where the CSV / JSON / plot go.')
_SAVE_IMAGES = flags.DEFINE_boolean('save_images', False,
                                    'Also write the restored PNGs.')


def _resolve_data() -> tuple[list[tuple[str, str, str | None]], str, float]:
  """(items (name, lq path, gt path or None), description, noise σ)."""
  from restorect_jax import datasets  # pylint: disable=g-import-not-at-top
  name = _DATASET.value
  sigma = 0.0
  if name == 'folder':
    if not _LQ_DIR.value:
      raise app.UsageError('--dataset=folder needs --lq_dir (and --gt_dir '
                           'for a paired set).')
    try:
      src = datasets.pair_dirs(
          _LQ_DIR.value, _GT_DIR.value or None, validate=False,
          pairing='underscore_prefix' if _PREFIX.value else 'stem')
    except (ValueError, FileNotFoundError) as e:
      raise app.UsageError(str(e)) from e
    desc = _LQ_DIR.value
  else:
    if not _DATA_DIR.value:
      raise app.UsageError(f'--dataset={name} needs --data_dir.')
    try:
      src = datasets.folder_source(name, _DATA_DIR.value, _SPLIT.value,
                                   validate=False)
      sigma = datasets.layout(name).noise_sigma
    except (ValueError, FileNotFoundError) as e:
      raise app.UsageError(str(e)) from e
    desc = name
  if _NOISE.value is not None:
    sigma = _NOISE.value / 255.0
  gts = src.gt_paths if getattr(src, 'has_gt', True) else [None] * len(
      src.names)
  return list(zip(src.names, src.lq_paths, gts, strict=True)), desc, sigma


def _records(items):
  """Records read lazily; a file that cannot be read becomes an error."""
  from restorect_jax.data import image_io  # pylint: disable=g-import-not-at-top
  for name, lq_path, gt_path in items:
    reading = lq_path
    try:
      lq = image_io.uint8_to_float32(image_io.read_image_uint8(lq_path))
      gt = None
      if gt_path:
        reading = gt_path
        gt = image_io.uint8_to_float32(image_io.read_image_uint8(gt_path))
        if gt.shape != lq.shape:
          raise ValueError(f'size mismatch: {lq_path} is '
                           f'{lq.shape[1]}x{lq.shape[0]} but {gt_path} is '
                           f'{gt.shape[1]}x{gt.shape[0]}')
    except (ValueError, OSError) as e:
      why = (str(e).strip().splitlines() or [type(e).__name__])[0]
      yield {'name': name,
             'error': why if reading in why else f'{reading}: {why}'}
      continue
    yield {'name': name, 'lq': lq, 'gt': gt}


def _steps_and_seeds() -> tuple[list[int], list[int]]:
  """``--rf_steps`` and ``--seeds`` as integers (steps >= 1)."""
  try:
    steps = [int(s) for s in _STEPS.value]
    seeds = [int(s) for s in _SEEDS.value]
  except ValueError as e:
    raise app.UsageError(f'--rf_steps and --seeds take integers: {e}') from e
  if steps and min(steps) < 1:
    raise app.UsageError('--rf_steps must be >= 1 (use --score_input for '
                         'the degraded input).')
  if not seeds:
    raise app.UsageError('--seeds needs at least one seed.')
  return steps, seeds


def main(argv):
  cli_common.start(argv)
  from restorect_jax.data import image_io  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation import extra_metrics  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation import protocols as protocols_lib  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation import reporting  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation import row_log  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation.evaluator import Evaluator  # pylint: disable=g-import-not-at-top
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  # Everything that can be checked is, before the first image: flags, the
  # data, the output folder and every weight file (model, DecomNet, the
  # extra metrics').
  try:
    protocols = [protocols_lib.get(n) for n in _PROTOCOLS.value]
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  steps_list, seed_list = _steps_and_seeds()
  items, data_desc, sigma = _resolve_data()
  if not items:
    raise FileNotFoundError(f'{data_desc}: no images to evaluate.')
  paired = any(gt for _, _, gt in items)
  out_dir = cli_common.output_dir(_OUTPUT_DIR.value, 'output_dir')
  predictor = cli_common.load_predictor()
  if predictor.needs_gt and not paired:
    raise ValueError(f'{cli_common.CHECKPOINT.value}: this model sees the '
                     'ground truth (an S1 teacher): it evaluates on paired '
                     'data only.')
  steps_list = steps_list or [predictor.default_steps]
  if _SCORE_INPUT.value:
    steps_list = [0] + steps_list
  seeds: list[int | None] = list(seed_list)
  if not predictor.stochastic:
    seeds = [None]  # deterministic sampler: one run per step count
  extra = extra_metrics.ExtraMetrics(
      {p.name: extra_metrics.requests_for(p, paired, _EXTRA.value)
       for p in protocols}, _FID_WEIGHTS.value, _FID_FLAVOUR.value)
  extra.preload()
  evaluator = Evaluator([p.name for p in protocols],
                        max_images=_MAX_IMAGES.value, noise_sigma=sigma,
                        extra=extra)
  print(f'Model: {loading.describe(predictor)}')
  print(f'Data: {data_desc} ({"paired" if paired else "unpaired"}, '
        f'{len(items)} images{", σ=%.4g" % sigma if sigma else ""})')
  lq_paths = {name: lq for name, lq, _ in items}
  jsonl = row_log.RowLog(os.path.join(out_dir, 'per_image.jsonl'))
  failures: list[str] = []

  def fail(name: str, why: str) -> None:
    # Failures are named by file, once each (a file fails for every step).
    line = f'{lq_paths.get(name, name)}: {why}'
    if line not in failures:
      failures.append(line)
      print(f'FAILED {line}', file=sys.stderr)

  t0 = time.time()
  for steps in steps_list:
    for seed in seeds:
      save = None
      if _SAVE_IMAGES.value:
        folder = os.path.join(out_dir, 'images', f'steps{steps}_seed{seed}')

        def save(name, out, folder=folder):
          try:
            image_io.write_png(out, os.path.join(folder, name + '.png'),
                               overwrite=True)
          except (OSError, ValueError) as e:
            fail(name, f'scored, but its image was not saved: '
                 f'{type(e).__name__}: {e}')

      res = evaluator.run(predictor, _records(items), steps=steps, seed=seed,
                          on_image=jsonl.append, save=save,
                          continue_on_error=True)
      for f in res.failures:
        name, _, why = f.partition(': ')
        fail(name, why)
      for r in res.rows:
        if r.image == reporting.DATASET_ROW:
          jsonl.append([r])
      print(f'steps {steps} seed {seed}: {res.n} images '
            f'({time.time() - t0:.0f} s)', file=sys.stderr)
  jsonl.close()
  rows = row_log.RowLog.read(jsonl.path)
  if not rows:
    print('No image could be evaluated.', file=sys.stderr)
    sys.exit(1)
  reporting.write_csv(os.path.join(out_dir, 'per_image.csv'), rows)
  summary = reporting.summarize(rows)
  files = sorted({p for _, lq, gt in items for p in (lq, gt) if p})
  reporting.write_summary_json(
      os.path.join(out_dir, 'summary.json'), summary, protocols=protocols,
      manifest_sha256=reporting.manifest_hash(files),
      checkpoint_sha256=predictor.info.get('sha256'), rf_steps=steps_list,
      seeds=seeds, dataset=data_desc, extra={
          'model': predictor.info, 'argv': sys.argv, 'noise_sigma': sigma,
          'failed': failures, 'unavailable_metrics': extra.unavailable})
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
    print(f'{len(failures)} images failed and were skipped:',
          file=sys.stderr)
    for f in failures:
      print(f'  {f}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['output_dir'])
  cli_errors.run(main)
