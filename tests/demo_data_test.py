"""Tests for restorect_jax.demo_data (the bundled synthetic low-light set)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from absl.testing import absltest
from PIL import Image

from restorect_jax import demo_data
from restorect_jax import input_pipeline


def _sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _read(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('RGB'))


def _mtimes(root: str) -> dict[str, int]:
  out = {}
  for d, _, files in os.walk(root):
    for f in files:
      p = os.path.join(d, f)
      out[os.path.relpath(p, root)] = os.stat(p).st_mtime_ns
  return out


class _TmpDirTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(prefix='demo_data_test_')
    self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)


class DefaultSetTest(absltest.TestCase):
  """Checks on one default build (seed 0, size 128)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix='demo_data_default_')
    cls.out = os.path.join(cls.root, 'demo')
    cls.manifest = demo_data.make_demo_pairs(cls.out, seed=0)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_layout_and_size(self):
    m = self.manifest
    self.assertEqual((m['num_train'], m['num_test']), (24, 2))
    for split, shape in (('train', (128, 128, 3)), ('test', (192, 256, 3))):
      low = sorted(os.listdir(os.path.join(self.out, split, 'low')))
      high = sorted(os.listdir(os.path.join(self.out, split, 'high')))
      self.assertEqual(low, high)
      for name in low:
        for side in ('low', 'high'):
          img = _read(os.path.join(self.out, split, side, name))
          self.assertEqual(img.shape, shape, (split, side, name))
    self.assertEqual(
        sorted(os.listdir(os.path.join(self.out, 'test', 'low'))),
        ['chelsea.png', 'coffee.png'],
    )
    train_photos = {p['photo'] for p in m['pairs'] if p['split'] == 'train'}
    self.assertEmpty(train_photos & {'chelsea', 'coffee'})
    total = sum(
        os.path.getsize(os.path.join(self.out, rel)) for rel in m['files']
    )
    self.assertEqual(total, m['total_bytes'])
    self.assertLess(total, 3 * 2**20)
    self.assertEqual(
        set(os.listdir(self.out)), {'train', 'test', 'manifest.json'}
    )

  def test_manifest_hashes_and_params(self):
    with open(os.path.join(self.out, 'manifest.json')) as f:
      on_disk = json.load(f)
    self.assertEqual(on_disk, self.manifest)
    self.assertLen(on_disk['files'], 2 * (24 + 2))
    for rel, digest in on_disk['files'].items():
      self.assertEqual(_sha256(os.path.join(self.out, rel)), digest, rel)
    self.assertEqual(demo_data.verify_manifest(self.out, on_disk), [])
    deg = on_disk['params']['degradation']
    self.assertEqual(deg['gamma'], 2.2)
    self.assertEqual(deg['exposure_range'], [0.05, 0.25])
    self.assertEqual(deg['read_sigma_range'], [0.005, 0.02])
    for p in on_disk['pairs']:
      self.assertBetween(p['exposure'], 0.05, 0.25)
      self.assertBetween(p['read_sigma'], 0.005, 0.02)

  def test_low_is_darker_and_noisy(self):
    for p in self.manifest['pairs']:
      base = os.path.join(self.out, p['split'])
      lq = _read(os.path.join(base, 'low', p['name'])).astype(np.float64)
      gt = _read(os.path.join(base, 'high', p['name'])).astype(np.float64)
      ratio = lq.mean() / gt.mean()
      # exposure^(1/2.2) is 0.26..0.53; noise clipped at 0 lifts it a bit.
      self.assertBetween(ratio, 0.2, 0.65, p['name'])
      clean = ((gt / 255) ** 2.2 * p['exposure']) ** (1 / 2.2) * 255
      residual = lq - clean
      self.assertGreater(residual.std(), 3.0, p['name'])  # Visibly noisy.
      self.assertLess(residual.std(), 40.0, p['name'])
      self.assertGreater(gt.std(), 10.0, p['name'])  # Not a blank crop.

  def test_idempotent_rebuild(self):
    before = _mtimes(self.out)
    again = demo_data.make_demo_pairs(self.out, seed=0)
    self.assertEqual(again, self.manifest)
    self.assertEqual(_mtimes(self.out), before)  # Nothing rewritten.

  def test_reads_with_input_pipeline(self):
    src = input_pipeline.PairedFolderSource(
        os.path.join(self.out, 'test', 'low'),
        os.path.join(self.out, 'test', 'high'),
    )
    items = list(input_pipeline.eval_dataset(src))
    self.assertEqual([x['name'] for x in items], ['chelsea', 'coffee'])
    self.assertEqual(items[0]['lq'].shape, (1, 192, 256, 3))
    src = input_pipeline.PairedFolderSource(
        os.path.join(self.out, 'train', 'low'),
        os.path.join(self.out, 'train', 'high'),
    )
    ds = input_pipeline.train_dataset(src, patch_size=64, batch_size=4, seed=0)
    batch = next(iter(ds))
    self.assertEqual(batch['lq'].shape, (4, 64, 64, 3))
    self.assertLess(batch['lq'].mean(), batch['gt'].mean())


class RebuildTest(_TmpDirTest):

  KW = dict(size=32, train_crops_per_image=2)

  def test_same_seed_same_hashes_other_seed_differs(self):
    def build(name, seed):
      out = os.path.join(self.root, name)
      return demo_data.make_demo_pairs(out, seed=seed, **self.KW)

    a, b, c = build('a', 3), build('b', 3), build('c', 4)
    self.assertEqual(a['files'], b['files'])
    self.assertEqual(a, b)
    self.assertLen(a['files'], 2 * (6 * 2 + 2))
    differ = [rel for rel in a['files'] if a['files'][rel] != c['files'][rel]]
    self.assertNotEmpty(differ)
    # Test images are fixed photos; only their degradation depends on seed.
    self.assertEqual(
        a['files']['test/high/coffee.png'], c['files']['test/high/coffee.png']
    )
    self.assertNotEqual(
        a['files']['test/low/coffee.png'], c['files']['test/low/coffee.png']
    )

  def test_repairs_damage_and_follows_params(self):
    out = os.path.join(self.root, 'd')
    first = demo_data.make_demo_pairs(out, seed=0, **self.KW)
    victim = os.path.join(out, 'train', 'low', 'rocket-01.png')
    with open(victim, 'wb') as f:
      f.write(b'damaged')
    self.assertEqual(
        demo_data.verify_manifest(out, first), ['train/low/rocket-01.png']
    )
    repaired = demo_data.make_demo_pairs(out, seed=0, **self.KW)
    self.assertEqual(repaired, first)
    self.assertEqual(demo_data.verify_manifest(out, repaired), [])
    fewer = demo_data.make_demo_pairs(
        out, seed=0, size=32, train_crops_per_image=1
    )
    self.assertEqual(fewer['num_train'], 6)
    self.assertLen(os.listdir(os.path.join(out, 'train', 'low')), 6)
    self.assertEmpty([n for n in os.listdir(out) if n.startswith('.')])

  def test_refuses_foreign_folders(self):
    out = os.path.join(self.root, 'foreign')
    os.makedirs(os.path.join(out, 'train'))
    with self.assertRaisesRegex(FileExistsError, 'train'):
      demo_data.make_demo_pairs(out, **self.KW)

  def test_cli(self):
    out = os.path.join(self.root, 'cli')
    cmd = [sys.executable, '-m', 'restorect_jax.demo_data', '--out', out,
           '--size', '32', '--train_crops_per_image', '2', '--seed', '3']
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(
        cmd, cwd=repo, capture_output=True, text=True, check=False
    )
    self.assertEqual(res.returncode, 0, res.stderr)
    self.assertIn('12 train pairs', res.stdout)
    with open(os.path.join(out, 'manifest.json')) as f:
      cli_manifest = json.load(f)
    ref = demo_data.make_demo_pairs(
        os.path.join(self.root, 'ref'), seed=3, **self.KW
    )
    self.assertEqual(cli_manifest['files'], ref['files'])


class DegradeTest(absltest.TestCase):

  def test_pure_function_of_image_and_rng(self):
    img = np.random.default_rng(0).integers(0, 256, (16, 24, 3), np.uint8)
    copy = img.copy()
    a = demo_data.degrade_low_light(img, np.random.default_rng(5))
    b = demo_data.degrade_low_light(img, np.random.default_rng(5))
    c = demo_data.degrade_low_light(img, np.random.default_rng(6))
    np.testing.assert_array_equal(img, copy)
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))
    self.assertEqual((a.dtype, a.shape), (np.uint8, img.shape))

  def test_darkens_and_adds_noise(self):
    flat = np.full((64, 64, 3), 180, np.uint8)
    out = demo_data.degrade_low_light(flat, np.random.default_rng(1))
    # 180/255 * exposure^(1/2.2) <= 0.53 * 180 = 96 (plus noise).
    self.assertLess(out.mean(), 110)
    self.assertGreater(out.mean(), 40)
    self.assertGreater(out.std(), 2.0)  # A flat input comes out noisy.
    with self.assertRaises(ValueError):
      demo_data.degrade_low_light(
          flat.astype(np.float32), np.random.default_rng(0)
      )


if __name__ == '__main__':
  absltest.main()
