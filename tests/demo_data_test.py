"""Tests for restorect_jax.data.demo_data (the bundled synthetic demo sets)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from PIL import Image

from restorect_jax.data import demo_data
from restorect_jax.data import input_pipeline


def _sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _json_sha256(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


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

  def test_default_set_is_pinned(self):
    # SHA-256s of the default low-light set, recorded before the other
    # degradations were added: the README demo numbers depend on these bytes.
    files = self.manifest['files']
    self.assertEqual(
        files['test/low/coffee.png'],
        'a7995a187007529830748a2020bf626e8b65ef4f44a832ccade5006791a21b20',
    )
    self.assertEqual(
        files['train/low/astronaut-00.png'],
        '22b544ffeadf07b6640dc7f70148dca60f2a48418674f0927217fb0c8fd9cd5a',
    )
    self.assertEqual(
        files['train/high/rocket-01.png'],
        '1ce530fb7800c25e2f11e30d8d1e6440deca3eb4dd445fd1136b400dc0f084a5',
    )
    self.assertEqual(
        _json_sha256(files),  # All 52 files.
        '11206c8b0fb8534638bb5c598ea074cf2f1793df93b3ec8b96b6a8264790e886',
    )
    self.assertEqual(
        _json_sha256(self.manifest['pairs']),  # Boxes and draws.
        '7616c89d4e4394f4c15ea2717009ccbd6ccfa71b9437fd94b9b82f40ef9ad127',
    )
    params = dict(self.manifest['params'])
    params.pop('photo_source')  # Names the installed scikit-image version.
    self.assertEqual(
        _json_sha256(params),
        '6e8afe5118480c6de220856289ddaec4dc9f5a59e19fe02f657bdb9054dae5b8',
    )
    self.assertNotIn('name', params['degradation'])

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

  def test_train_photos_subset(self):
    out = os.path.join(self.root, 'subset')
    full = demo_data.make_demo_pairs(out, seed=0, **self.KW)
    sub = demo_data.make_demo_pairs(
        out, seed=0, train_photos=('rocket', 'astronaut'), **self.KW
    )
    self.assertEqual(sub['params']['train_photos'], ['rocket', 'astronaut'])
    self.assertEqual(
        sorted(os.listdir(os.path.join(out, 'train', 'low'))),
        ['astronaut-00.png', 'astronaut-01.png', 'rocket-00.png',
         'rocket-01.png'],
    )
    # A photo's crops and draws do not depend on which others are in.
    for rel, digest in sub['files'].items():
      self.assertEqual(digest, full['files'][rel], rel)
    for bad in ((), ('rocket', 'rocket'), ('coffee',), ('nope',)):
      with self.assertRaisesRegex(ValueError, 'train_photos'):
        demo_data.make_demo_pairs(
            os.path.join(self.root, 'bad'), train_photos=bad, **self.KW
        )

  def test_refuses_foreign_folders(self):
    out = os.path.join(self.root, 'foreign')
    os.makedirs(os.path.join(out, 'train'))
    with self.assertRaisesRegex(FileExistsError, 'train'):
      demo_data.make_demo_pairs(out, **self.KW)

  def test_cli(self):
    out = os.path.join(self.root, 'cli')
    cmd = [sys.executable, '-m', 'restorect_jax.data.demo_data', '--out', out,
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


class DegradationSetTest(_TmpDirTest):
  """The underwater, rain and noise sets (small builds, made once)."""

  KW = dict(size=32, train_crops_per_image=1)
  KINDS = ('low_light', 'underwater', 'rain', 'noise')

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tempfile.mkdtemp(prefix='demo_data_kinds_')
    cls.sets = {
        kind: demo_data.make_demo_pairs(
            os.path.join(cls.shared, kind), degradation=kind, **cls.KW
        )
        for kind in cls.KINDS
    }

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.shared, ignore_errors=True)
    super().tearDownClass()

  def build(self, name, degradation, seed=0, **kw):
    out = os.path.join(self.root, name)
    return out, demo_data.make_demo_pairs(
        out, seed=seed, degradation=degradation, **self.KW, **kw
    )

  def test_layout_and_clean_targets(self):
    low_light = self.sets['low_light']
    for degradation in self.KINDS[1:]:
      out, m = os.path.join(self.shared, degradation), self.sets[degradation]
      self.assertEqual((m['num_train'], m['num_test']), (6, 2))
      self.assertEqual(m['params']['degradation']['name'], degradation)
      self.assertEqual(demo_data.verify_manifest(out, m), [])
      for split in ('train', 'test'):
        self.assertEqual(
            sorted(os.listdir(os.path.join(out, split, 'low'))),
            sorted(os.listdir(os.path.join(out, split, 'high'))),
        )
      # Same targets as the low-light set; different inputs.
      for rel, digest in m['files'].items():
        if '/high/' in rel:
          self.assertEqual(digest, low_light['files'][rel], rel)
        else:
          self.assertNotEqual(digest, low_light['files'][rel], rel)
      src = input_pipeline.PairedFolderSource(
          os.path.join(out, 'train', 'low'), os.path.join(out, 'train', 'high')
      )
      self.assertLen(src, 6)

  def test_deterministic_from_seed(self):
    _, again = self.build('again', 'rain')
    self.assertEqual(again['files'], self.sets['rain']['files'])
    self.assertEqual(again['pairs'], self.sets['rain']['pairs'])
    _, other = self.build('seed1', 'rain', seed=1)
    self.assertNotEqual(
        other['files']['test/low/coffee.png'],
        self.sets['rain']['files']['test/low/coffee.png'],
    )

  def test_noise_sigma_recorded_and_switch_rebuilds(self):
    out, m = self.build('n', 'noise', noise_sigma=10.0)
    self.assertEqual(m['params']['degradation']['sigma'], 10.0)
    self.assertTrue(all(p['sigma'] == 10.0 for p in m['pairs']))
    # The same folder switched to another degradation is rebuilt.
    m2 = demo_data.make_demo_pairs(out, degradation='rain', **self.KW)
    self.assertEqual(m2['params']['degradation']['name'], 'rain')
    self.assertEqual(demo_data.verify_manifest(out, m2), [])
    self.assertNotEqual(
        m2['files']['test/low/coffee.png'], m['files']['test/low/coffee.png']
    )

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'underwater'):
      demo_data.make_demo_pairs(
          os.path.join(self.root, 'x'), degradation='fog', **self.KW
      )
    with self.assertRaisesRegex(ValueError, 'noise_sigma'):
      demo_data.make_demo_pairs(
          os.path.join(self.root, 'y'), degradation='noise', noise_sigma=-1,
          **self.KW,
      )

  def test_cli_degradation(self):
    out = os.path.join(self.root, 'cli')
    cmd = [sys.executable, '-m', 'restorect_jax.data.demo_data', '--out', out,
           '--size', '32', '--train_crops_per_image', '1',
           '--degradation', 'underwater']
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(
        cmd, cwd=repo, capture_output=True, text=True, check=False
    )
    self.assertEqual(res.returncode, 0, res.stderr)
    self.assertIn('(underwater)', res.stdout)
    with open(os.path.join(out, 'manifest.json')) as f:
      self.assertEqual(
          json.load(f)['files'], self.sets['underwater']['files']
      )


class OtherDegradationsTest(parameterized.TestCase):

  @parameterized.parameters(
      demo_data.degrade_underwater,
      demo_data.degrade_rain,
      demo_data.degrade_noise,
  )
  def test_pure_function_of_image_and_rng(self, fn):
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    copy = img.copy()
    a = fn(img, np.random.default_rng(5))
    b = fn(img, np.random.default_rng(5))
    c = fn(img, np.random.default_rng(6))
    np.testing.assert_array_equal(img, copy)
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))
    self.assertEqual((a.dtype, a.shape), (np.uint8, img.shape))
    with self.assertRaises(ValueError):
      fn(img.astype(np.float32), np.random.default_rng(0))

  def test_underwater_formation_model(self):
    img = np.full((40, 50, 3), 200, np.uint8)
    lq, p = demo_data._underwater(img, np.random.default_rng(3))
    beta, ambient = np.array(p['beta']), np.array(p['ambient'])
    self.assertTrue(beta[0] > beta[1] > beta[2])  # Red lost first.
    self.assertLess(ambient[0], min(ambient[1], ambient[2]))  # Blue-green.
    means = lq.reshape(-1, 3).mean(0)
    self.assertLess(means[0], means[1])
    self.assertLess(means[0], means[2])
    # Check one pixel against the formula: the nearest one sits at distance
    # `near` (the ramp's minimum), the farthest at `near + span`.
    ramp = demo_data._distance_ramp(40, 50, np.deg2rad(p['far_direction_deg']))
    for d, (y, x) in ((p['near'], np.unravel_index(ramp.argmin(), ramp.shape)),
                      (p['near'] + p['span'],
                       np.unravel_index(ramp.argmax(), ramp.shape))):
      t = np.exp(-beta * d)
      want = np.round(255 * (200 / 255 * t + ambient * (1 - t)))
      np.testing.assert_array_equal(lq[y, x], want)
    # Farther means more veil: the red channel falls towards the far edge.
    self.assertGreater(
        int(lq[..., 0][ramp < 0.1].mean()), int(lq[..., 0][ramp > 0.9].mean())
    )

  def test_rain_streaks_brighten_along_the_angle(self):
    img = np.full((96, 96, 3), 90, np.uint8)
    lq, p = demo_data._rain(img, np.random.default_rng(4))
    self.assertTrue(np.all(lq >= img))  # Screen blend never darkens.
    diff = (lq.astype(np.float64) - img)[..., 0]
    covered = (diff > 0).mean()
    self.assertBetween(covered, 0.01, 0.5)
    self.assertGreater(p['num_streaks'], 0)
    self.assertBetween(p['length'], 8, 20)
    self.assertBetween(abs(p['angle_deg']), 0, 25)
    # Streaks are lines: the difference image correlates with itself shifted
    # 4 px along the drawn angle far more than shifted 4 px across it.
    theta = np.deg2rad(p['angle_deg'])
    d = diff - diff.mean()

    def corr(dy, dx):
      return float((d * np.roll(d, (dy, dx), axis=(0, 1))).mean() / d.var())

    along = corr(4, int(round(4 * np.tan(theta))))
    across = corr(int(round(-4 * np.sin(theta))), int(round(4 * np.cos(theta))))
    self.assertGreater(along, 0.4)
    self.assertGreater(along, 3 * abs(across))

  def test_noise_statistics(self):
    img = np.full((64, 64, 3), 128, np.uint8)
    lq = demo_data.degrade_noise(img, np.random.default_rng(0), sigma=25.0)
    residual = lq.astype(np.float64) - 128
    self.assertBetween(residual.std(), 24.0, 26.0)
    self.assertBetween(residual.mean(), -1.0, 1.0)
    np.testing.assert_array_equal(
        demo_data.degrade_noise(img, np.random.default_rng(0), sigma=0.0), img
    )


if __name__ == '__main__':
  absltest.main()
