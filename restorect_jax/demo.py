r"""The main job on bundled data: S1 → S2 → evaluation → restore, on a CPU.

``python -m restorect_jax.demo --workdir runs/demo`` builds the demo set
(real photographs from scikit-image, synthetically darkened; see
``data/demo_data.py``), trains the teacher and the student with
``configs/demo.py``, prints PSNR / SSIM (standard protocol: RGB, crop 0,
rounding) of the degraded input, the teacher (which sees the ground truth)
and the student through the same evaluator and predictors as every other
command, and writes each restored test image to ``<workdir>/restored/`` and
an ``lq | restored | gt`` strip to ``<workdir>/restored/compare_*.png``.
Re-running resumes / reuses finished stages.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string('workdir', 'runs/demo', 'Output directory.')
_S1_STEPS = flags.DEFINE_integer('s1_steps', None, 'Teacher steps (default: '
                                 'configs/demo.py).')
_S2_STEPS = flags.DEFINE_integer('s2_steps', None, 'Student steps (both '
                                 'phases; default: configs/demo.py).')
_PHASE1 = flags.DEFINE_integer('phase1_steps', None,
                               'Student phase-1 steps.')
_RF_STEPS = flags.DEFINE_integer('rf_steps', None,
                                 'Euler steps at inference.', lower_bound=1)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of data, init and sampling.')


def _config(stage: str):
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  args = [f'stage={stage}'] + [
      f'{k}={f.value}' for k, f in (('s1_steps', _S1_STEPS),
                                    ('s2_steps', _S2_STEPS),
                                    ('phase1_steps', _PHASE1))
      if f.value is not None]
  c = config_lib.load(config_lib.repo_configs('demo.py'), ','.join(args))
  c.seed = _SEED.value
  c.eval_last = False  # main() evaluates both stages through one evaluator
  if _RF_STEPS.value:
    c.rf_steps = _RF_STEPS.value
  return c


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import metric_writers  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import runtime  # pylint: disable=g-import-not-at-top
  from restorect_jax.data import image_io  # pylint: disable=g-import-not-at-top
  from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation.evaluator import Evaluator  # pylint: disable=g-import-not-at-top
  from restorect_jax.evaluation.reporting import DATASET_ROW  # pylint: disable=g-import-not-at-top
  from restorect_jax.inference import loading  # pylint: disable=g-import-not-at-top
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  t0 = time.time()
  root = os.path.abspath(_WORKDIR.value)
  s1_dir, s2_dir = os.path.join(root, 's1'), os.path.join(root, 's2')
  data_dir = os.path.join(root, 'demo_data')

  c1 = _config('s1')
  c1.input.data_dir = data_dir
  print(f'== S1: teacher, {c1.total_steps} steps ({s1_dir})', flush=True)
  train.train_and_evaluate(c1, s1_dir)

  c2 = _config('s2')
  c2.input.data_dir = data_dir
  c2.teacher_init = s1_dir
  print(f'== S2: student, {c2.total_steps} steps, phase 1 = '
        f'{c2.phase1_steps} ({s2_dir})', flush=True)
  train.train_and_evaluate(c2, s2_dir)

  print('== Evaluation on the demo test split', flush=True)
  records = list(sources.eval_records(c2, s2_dir))
  teacher = loading.from_workdir(s1_dir)
  student = loading.from_workdir(s2_dir)
  evaluator = Evaluator(c2.evals.protocols, keep_outputs=len(records))
  # --rf_steps wins over the steps the S2 workdir was trained with (a
  # finished workdir is evaluated again at the new count, not skipped).
  rf_steps = _RF_STEPS.value or student.default_steps
  rows = [('degraded input', evaluator.run(student, records, steps=0)),
          ('teacher S1 (EMA; sees GT, privileged)',
           evaluator.run(teacher, records)),
          (f'student S2 (EMA, {rf_steps} RF steps)',
           evaluator.run(student, records, steps=rf_steps, seed=c2.seed))]
  proto = c2.evals.protocols[0]
  per_image = {name: {row.image: row.metrics['psnr'] for row in r.rows
                      if row.protocol == proto and row.image != DATASET_ROW}
               for name, r in rows}
  names = sorted(per_image[rows[0][0]])
  table = ['| model | PSNR (dB) | SSIM | ' + ' | '.join(
      f'PSNR {os.path.splitext(n)[0]}' for n in names) + ' |',
           '|---|---|---|' + '---|' * len(names)]
  table += [f'| {name} | {r.means[proto]["psnr"]:.2f} | '
            f'{r.means[proto]["ssim"]:.4f} | ' + ' | '.join(
                f'{per_image[name][n]:.2f}' for n in names) + ' |'
            for name, r in rows]
  print(f'{len(records)} test images, {proto} protocol:')
  print('\n'.join(table))

  out_dir = os.path.join(root, 'restored')
  for o in rows[2][1].outputs:
    image_io.write_png(o.out, os.path.join(out_dir, f'{o.name}.png'),
                       overwrite=True)
    strip = metric_writers.image_grid([[o.lq, o.out, o.gt]])
    image_io.write_png(np.asarray(strip), os.path.join(
        out_dir, f'compare_{o.name}.png'), overwrite=True)
  summary = {name: {'psnr': r.means[proto]['psnr'],
                    'ssim': r.means[proto]['ssim'], 'n': r.n,
                    'psnr_per_image': per_image[name]}
             for name, r in rows}
  with open(os.path.join(root, 'demo_results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  print(f'Restored images and lq | restored | gt strips in {out_dir}; '
        f'results in {os.path.join(root, "demo_results.json")}; '
        f'{time.time() - t0:.0f} s in all.')


if __name__ == '__main__':
  app.run(main)
