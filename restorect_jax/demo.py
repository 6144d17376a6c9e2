r"""The main job on bundled data: S1 → S2 → evaluation → restore, on a CPU.

``python -m restorect_jax.demo --workdir runs/demo`` builds the demo set
(real photographs from scikit-image, synthetically darkened; see
``demo_data.py``), trains the teacher and the student with
``configs/demo.py``, prints PSNR / SSIM (standard protocol: RGB, crop 0,
rounding) of the degraded input, the teacher (which sees the ground truth)
and the student, and writes restored images of the test set to
``<workdir>/restored``. Re-running resumes / reuses finished stages.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np
from PIL import Image

_WORKDIR = flags.DEFINE_string('workdir', 'runs/demo', 'Output directory.')
_S1_STEPS = flags.DEFINE_integer('s1_steps', 300, 'Teacher steps.')
_S2_STEPS = flags.DEFINE_integer('s2_steps', 300, 'Student steps (both '
                                 'phases).')
_PHASE1 = flags.DEFINE_integer('phase1_steps', 100, 'Student phase-1 steps.')
_RF_STEPS = flags.DEFINE_integer('rf_steps', 5, 'Euler steps at inference.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of data, init and sampling.')


def _config(stage: str):
  from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.demo_config(stage, s1_steps=_S1_STEPS.value,
                             s2_steps=_S2_STEPS.value,
                             phase1_steps=_PHASE1.value)
  c.seed = _SEED.value
  c.rf_steps = _RF_STEPS.value
  return c


def main(argv):
  del argv
  from restorect_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from restorect_jax import evaluators  # pylint: disable=g-import-not-at-top
  from restorect_jax import inference  # pylint: disable=g-import-not-at-top
  from restorect_jax import runtime  # pylint: disable=g-import-not-at-top
  from restorect_jax import train  # pylint: disable=g-import-not-at-top
  runtime.enable_compilation_cache()
  runtime.quiet_logging()
  t0 = time.time()
  root = os.path.abspath(_WORKDIR.value)
  s1_dir, s2_dir = os.path.join(root, 's1'), os.path.join(root, 's2')
  data_dir = os.path.join(root, 'demo_data')

  c1 = _config('s1')
  c1.input.data_dir = data_dir
  print(f'== S1: teacher, {c1.total_steps} steps ({s1_dir})', flush=True)
  res_t = train.train_and_evaluate(c1, s1_dir)

  c2 = _config('s2')
  c2.input.data_dir = data_dir
  c2.teacher_init = s1_dir
  print(f'== S2: student, {c2.total_steps} steps, phase 1 = '
        f'{c2.phase1_steps} ({s2_dir})', flush=True)
  res_s = train.train_and_evaluate(c2, s2_dir)

  print('== Evaluation on the demo test split', flush=True)
  paths = train.data_paths(c2, s2_dir)
  records = list(train.eval_records(c2, paths))
  res_in = evaluators.evaluate(evaluators.make_predict('input', None, None),
                               records)
  rows = [('degraded input', res_in),
          ('teacher S1 (EMA; sees GT, privileged)', res_t),
          (f'student S2 (EMA, {c2.rf_steps} RF steps)', res_s)]
  table = ['| model | PSNR (dB) | SSIM |', '|---|---|---|']
  table += [f'| {name} | {r["psnr"]:.2f} | {r["ssim"]:.4f} |'
            for name, r in rows]
  print(f'{len(records)} test images, standard protocol (RGB, crop 0, '
        'uint8 rounding):')
  print('\n'.join(table))

  print('== Restore: the deployed Interface on the test inputs', flush=True)
  ema, _ = checkpointing.load_params(s2_dir)
  g = {k: v for k, v in ema['model']['G'].items() if k != 'decom'}
  params = {'interface': {'params': dict(ema['model'], G=g)},
            'decom_low': train.frozen_decoms(c2, s2_dir)['decom_low']}
  model = train.build_models(c2)['interface']
  out_dir = os.path.join(root, 'restored')
  os.makedirs(out_dir, exist_ok=True)
  for i, rec in enumerate(records):
    out = inference.restore(params, rec['lq'][None], rf_steps=c2.rf_steps,
                            rng=jax.random.fold_in(jax.random.PRNGKey(
                                c2.seed), i), model=model)
    img = (np.asarray(out[0]) * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(out_dir, f'{rec["name"]}.png'))
  summary = {name: {k: r[k] for k in ('psnr', 'ssim', 'n')}
             for name, r in rows}
  with open(os.path.join(root, 'demo_results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  print(f'Restored images in {out_dir}; results in '
        f'{os.path.join(root, "demo_results.json")}; '
        f'{time.time() - t0:.0f} s in all.')


if __name__ == '__main__':
  app.run(main)
