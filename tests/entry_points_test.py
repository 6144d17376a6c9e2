"""One checkpoint, one image: every entry point gives the same output.

Training's evaluation (``train.evaluate_and_log``, what the loop calls at
its eval cadence), ``main --mode eval`` (``train.evaluate_checkpoint``),
the evaluate CLI, the restore CLI and the Python API
(``inference.from_workdir(...).predict``) must restore an image
bit-identically: all run the method's one predictor with the prior noise
keyed by the image's name. Images have odd sizes so the padding path runs.
"""

from __future__ import annotations

import csv
import os
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import numpy as np
from PIL import Image

from configs import irflow as irflow_config
from configs import restorect_s2
from restorect_jax import inference
from restorect_jax import train
from restorect_jax.core import checkpoint_io
from restorect_jax.core import checkpointing
from restorect_jax.core import metric_writers
from restorect_jax.core.train_state import TrainState
from restorect_jax.data import image_io
from restorect_jax.evaluation import evaluator as evaluator_lib
import testutil


def _cli(module, *args):
  r = testutil.run_cli(module, *args)
  if r.returncode:
    raise AssertionError(f'{module} failed:\n{r.stderr[-3000:]}')
  return r


def _images(root: str) -> tuple[str, str, list[str]]:
  """Two paired images of odd sizes (not multiples of 8 or 16)."""
  rng = np.random.default_rng(0)
  lq_dir, gt_dir = os.path.join(root, 'lq'), os.path.join(root, 'gt')
  names = []
  for i, (h, w) in enumerate(((37, 53), (50, 41))):
    name = f'img{i}'
    gt = rng.uniform(0.2, 1.0, (h, w, 3))
    lq = np.clip(gt * 0.3 + rng.normal(0, 0.02, gt.shape), 0, 1)
    for folder, img in ((lq_dir, lq), (gt_dir, gt)):
      os.makedirs(folder, exist_ok=True)
      Image.fromarray((img * 255).round().astype(np.uint8)).save(
          os.path.join(folder, name + '.png'))
    names.append(name)
  return lq_dir, gt_dir, names


def _checkpoint(config, workdir):
  """A saved run (random weights, as after a few steps) of ``config``."""
  s = testutil.method_setup(config)
  state = TrainState.create(s.params, s.tx, jax.random.PRNGKey(0))
  # Make EMA and online weights differ, as after training.
  state = state.replace(ema_params=jax.tree.map(lambda p: p * 0.999,
                                                state.params))
  for key, variables in s.frozen.items():
    if key.startswith('decom_'):
      checkpoint_io.save_variables(
          variables, os.path.join(workdir, f'frozen_{key}'))
  ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir))
  ckpt.save(1, state, {}, {'config': config.to_dict(),
                           'method': s.method.name})
  ckpt.close()
  return s, state


class EntryPointsTest(absltest.TestCase):

  def _check(self, config):
    root = tempfile.mkdtemp()
    lq_dir, gt_dir, names = _images(root)
    config.input.dataset = 'folder'
    config.input.eval_lq_dir, config.input.eval_gt_dir = lq_dir, gt_dir
    config.input.lq_dir, config.input.gt_dir = lq_dir, gt_dir
    config.evals.keep_outputs = len(names)
    config.evals.max_images = 0
    workdir = os.path.join(root, 'run')
    s, state = _checkpoint(config, workdir)
    records = train.sources.eval_records(config, workdir)

    captured = []
    real_run = evaluator_lib.Evaluator.run

    def spy(self_, *a, **kw):
      res = real_run(self_, *a, **kw)
      captured.append({o.name: o.out for o in res.outputs})
      return res

    writer = metric_writers.MetricWriter(workdir, tensorboard=False)
    with mock.patch.object(evaluator_lib.Evaluator, 'run', spy):
      train.evaluate_and_log(s.method, config, state, s.frozen, records,
                             writer, 1, workdir)
      train.evaluate_checkpoint(config, workdir)
    writer.close()
    training_eval, mode_eval = captured

    api = inference.from_workdir(workdir)
    out_eval = os.path.join(root, 'eval')
    _cli('evaluate', f'--checkpoint={workdir}', f'--lq_dir={lq_dir}',
         f'--gt_dir={gt_dir}', f'--seeds={config.seed}', '--save_images',
         f'--output_dir={out_eval}')
    out_restore = os.path.join(root, 'restored')
    _cli('restore', f'--checkpoint={workdir}', f'--input={lq_dir}',
         f'--output={out_restore}', f'--seed={config.seed}')
    seed_dir = f'steps{api.default_steps}_seed' + (
        str(config.seed) if api.stochastic else 'None')
    for name in names:
      lq = image_io.read_image(os.path.join(lq_dir, name + '.png'))
      want = api.predict(lq, name=name, seed=config.seed)
      np.testing.assert_array_equal(training_eval[name], want, name)
      np.testing.assert_array_equal(mode_eval[name], want, name)
      want8 = image_io.to_uint8(want)
      for folder in (os.path.join(out_eval, 'images', seed_dir),
                     out_restore):
        got = np.asarray(Image.open(os.path.join(folder, name + '.png')))
        np.testing.assert_array_equal(got, want8, f'{folder}/{name}')
    # The CLI's per-image PSNR is the training evaluation's.
    with open(os.path.join(out_eval, 'per_image.csv')) as f:
      rows = [r for r in csv.DictReader(f) if r['image'] in names]
    self.assertLen(rows, len(names) * len(config.evals.protocols))

  def test_restorect_student(self):
    c = restorect_s2.get_config('runlocal')
    c.seed = 3
    self._check(c)

  def test_irflow(self):
    self._check(irflow_config.get_config('task=derain,runlocal'))


if __name__ == '__main__':
  absltest.main()
