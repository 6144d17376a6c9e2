"""The evaluate and restore CLIs, end to end on small random-weight models."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from restorect_jax.core import checkpoint_io
from restorect_jax import restore
from restorect_jax.methods.irflow import predictor as irflow_predictor
from restorect_jax.methods.restorect import predictor as restorect_predictor
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import init_variables
import testutil


def _run(module, *args):
  return testutil.run_cli(module, *args)


def _save(variables, path, model, variant):
  checkpoint_io.save_variables(
      jax.tree.map(np.asarray, variables), path,
      metadata={'model': model, 'variant': variant, 'overrides': {}})


def _photo(h, w, seed):
  rng = np.random.default_rng(seed)
  base = np.linspace(0, 1, w)[None, :, None] * np.linspace(
      0.3, 1, h)[:, None, None]
  img = np.clip(base * [1.0, 0.7, 0.4] + 0.1 * rng.uniform(size=(h, w, 3)),
                0, 1)
  return (img * 255).astype(np.uint8)


class CliTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.irflow = os.path.join(cls.root, 'irflow')
    cls.interface = os.path.join(cls.root, 'interface')
    cls.decom = os.path.join(cls.root, 'decom')
    img = jnp.zeros((1, 32, 32, 3))
    _save(init_variables(Model('irflow', 'tiny'), 0, img[:, :16, :16],
                         jnp.zeros((1,), jnp.int32)), cls.irflow, 'irflow',
          'tiny')
    z = jnp.zeros((1, 256))
    _save(init_variables(Model('interface', 'demo'), 0, img,
                         jnp.zeros((1, 32, 32, 4)), z, z), cls.interface,
          'interface', 'demo')
    _save(init_variables(DecomNet(), 1, img), cls.decom, 'decomnet',
          'default')
    cls.lq = os.path.join(cls.root, 'lq')
    cls.gt = os.path.join(cls.root, 'gt')
    for d in (cls.lq, cls.gt):
      os.makedirs(d)
    for i, (h, w) in enumerate(((40, 52), (33, 48))):
      Image.fromarray(_photo(h, w, i)).save(f'{cls.gt}/{i}.png')
      Image.fromarray((_photo(h, w, i) * 0.3).astype(np.uint8)).save(
          f'{cls.lq}/{i}.png')

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_help(self):
    for module in ('evaluate', 'restore'):
      r = _run(module, '--helpshort')
      self.assertIn('--checkpoint', r.stdout + r.stderr, module)
      self.assertIn('--weights', r.stdout + r.stderr, module)

  def test_restore_folder_skips_a_corrupt_file_and_keeps_outputs(self):
    src = os.path.join(self.root, 'restore_in')
    shutil.copytree(self.lq, src)
    with open(os.path.join(src, 'bad.png'), 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n truncated')
    out = os.path.join(self.root, 'restore_out')
    args = ['--model', 'interface', '--weights', self.interface, '--decom',
            self.decom, '--input', src, '--output', out, '--rf_steps', '2',
            '--seed', '3']
    r = _run('restore', *args)
    self.assertEqual(r.returncode, 1, r.stderr)
    self.assertIn('bad.png', r.stderr)
    self.assertEqual(sorted(os.listdir(out)), ['0.png', '1.png'])
    first = np.asarray(Image.open(os.path.join(out, '0.png')))
    self.assertEqual(first.shape, (40, 52, 3))
    # Existing outputs are kept without --overwrite ...
    mtime = os.path.getmtime(os.path.join(out, '0.png'))
    r = _run('restore', *args)
    self.assertIn('exists, kept', r.stderr)
    self.assertEqual(os.path.getmtime(os.path.join(out, '0.png')), mtime)
    # ... and the same seed gives the identical image; another seed not.
    r = _run('restore', *args, '--overwrite')
    np.testing.assert_array_equal(
        np.asarray(Image.open(os.path.join(out, '0.png'))), first)
    r = _run('restore', *args[:-2], '--seed', '4', '--overwrite')
    self.assertFalse(np.array_equal(
        np.asarray(Image.open(os.path.join(out, '0.png'))), first))

  def test_restore_irflow_steps_tiles_and_ensemble(self):
    out = os.path.join(self.root, 'irflow_out')
    r = _run('restore', '--model', 'irflow', '--weights', self.irflow,
             '--steps', '3', '--input', os.path.join(self.lq, '*.png'),
             '--output', out, '--tile', '32', '--tile_overlap', '8',
             '--ensemble', 'x8')
    self.assertEqual(r.returncode, 0, r.stderr)
    self.assertIn('irflow, 3 steps', r.stdout)
    self.assertEqual(np.asarray(Image.open(os.path.join(out, '1.png'))).shape,
                     (33, 48, 3))

  def test_missing_input_is_a_clear_error(self):
    r = _run('restore', '--model', 'irflow', '--weights', self.irflow,
             '--input', os.path.join(self.root, 'nope'), '--output',
             os.path.join(self.root, 'x'))
    self.assertNotEqual(r.returncode, 0)
    self.assertIn('nope', r.stderr)
    self.assertNotIn('Traceback', r.stderr)

  def test_evaluate_sweep_over_steps_and_seeds(self):
    out = os.path.join(self.root, 'eval')
    r = _run('evaluate', '--model', 'interface', '--weights', self.interface,
             '--decom', self.decom, '--lq_dir', self.lq, '--gt_dir', self.gt,
             '--protocols', 'standard,restorect_files', '--rf_steps', '1,2',
             '--seeds', '0,1', '--extra_metrics', 'none', '--output_dir',
             out)
    self.assertEqual(r.returncode, 0, r.stderr)
    # The table names each protocol with its description.
    self.assertIn('restorect_files:', r.stdout)
    self.assertIn('standard:', r.stdout)
    with open(os.path.join(out, 'summary.json')) as f:
      summary = json.load(f)
    self.assertEqual(summary['rf_steps'], [1, 2])
    self.assertEqual(summary['seeds'], [0, 1])
    self.assertLen(summary['manifest_sha256'], 64)
    self.assertLen(summary['checkpoint_sha256'], 64)
    with open(os.path.join(out, 'per_image.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 2 * 2 * 2 * 2)  # images x steps x seeds x protocols
    png = Image.open(os.path.join(out, 'steps_vs_psnr.png'))
    self.assertEqual(png.format, 'PNG')

  def test_evaluate_unpaired_reports_no_paired_metric(self):
    out = os.path.join(self.root, 'eval_unpaired')
    r = _run('evaluate', '--model', 'irflow', '--weights', self.irflow,
             '--lq_dir', self.lq, '--protocols', 'standard',
             '--extra_metrics', 'uciqe', '--output_dir', out)
    self.assertEqual(r.returncode, 0, r.stderr)
    with open(os.path.join(out, 'per_image.csv')) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 2)
    self.assertNotIn('psnr', rows[0])
    self.assertIn('uciqe', rows[0])


class TiledRestoreTest(absltest.TestCase):
  """Tiled vs untiled restores of the same image with real networks."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    img = jnp.zeros((1, 32, 32, 3))
    cls.irflow = irflow_predictor.irflow_predictor(
        init_variables(Model('irflow', 'tiny'), 0, img[:, :16, :16],
                       jnp.zeros((1,), jnp.int32))['params'],
        model=Model('irflow', 'tiny'), info={})
    z = jnp.zeros((1, 256))
    cls.restorect = restorect_predictor.student_predictor(
        init_variables(Model('interface', 'demo'), 0, img,
                       jnp.zeros((1, 32, 32, 4)), z, z),
        init_variables(DecomNet(), 1, img), model=Model('interface', 'demo'),
        info={})
    cls.image = _photo(96, 120, 0).astype(np.float32) / 255

  def _both(self, predictor):
    kw = dict(name='photo.png', seed=0, steps=2)
    full = restore.restore_image(predictor, self.image, buckets=False, **kw)
    tiled = restore.restore_image(predictor, self.image, tile=64, overlap=32,
                                  **kw)
    return full, tiled

  def test_irflow_tiled_equals_untiled(self):
    # Convolutions are local; only LinearAttention sees the whole tile, and
    # the overlap keeps its effect far below a uint8 level (1/255).
    full, tiled = self._both(self.irflow)
    self.assertLess(float(np.max(np.abs(full - tiled))), 1e-3)

  def test_restorect_tiling(self):
    # The priors are computed once on the whole image and shared by every
    # tile, but G's channel attention pools over each tile, so tiling
    # RestoRect is an approximation (README). With random weights the
    # attention is far from smooth: 25 dB at tile 64 on this 96x120 image
    # (a misplaced tile gives ~10 dB).
    full, tiled = self._both(self.restorect)
    mse = float(np.mean((full - tiled) ** 2))
    self.assertGreater(10 * np.log10(1 / mse), 22.0)

if __name__ == '__main__':
  absltest.main()
