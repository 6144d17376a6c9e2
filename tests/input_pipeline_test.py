"""Tests for restorect_jax.input_pipeline on small generated PNG pairs."""

import os
import shutil
import tempfile

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from PIL import Image

import testutil
from restorect_jax import input_pipeline as ip


def _save(path: str, arr: np.ndarray, mode: str | None = None) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(arr, mode=mode).save(path)
  return path


_png16 = testutil.write_png16


def _coord_image(h: int, w: int, ident: int) -> np.ndarray:
  """gt whose pixels encode (row, col, image id): crops can be located."""
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
  return np.stack([yy, xx, np.full_like(yy, ident)], -1).astype(np.uint8)


def _is_window(patch: np.ndarray) -> bool:
  """True if a coordinate-image patch is an unflipped contiguous window."""
  rows, cols = patch[..., 0].astype(int), patch[..., 1].astype(int)
  p, q = rows.shape
  return bool(
      np.all(rows == rows[0, 0] + np.arange(p)[:, None])
      and np.all(cols == cols[0, 0] + np.arange(q)[None, :])
  )


def _u8(x: np.ndarray) -> np.ndarray:
  return np.round(np.asarray(x) * 255.0).astype(np.int64)


class _TmpDirTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(prefix='input_pipeline_test_')
    self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)

  def make_pairs(self, shapes, name='pairs'):
    """lq = gt // 2 with gt a coordinate image; returns (lq_dir, gt_dir)."""
    lq_dir = os.path.join(self.root, name, 'low')
    gt_dir = os.path.join(self.root, name, 'high')
    for i, (h, w) in enumerate(shapes):
      gt = _coord_image(h, w, i)
      _save(os.path.join(gt_dir, f'{i:03d}.png'), gt)
      _save(os.path.join(lq_dir, f'{i:03d}.png'), gt // 2)
    return lq_dir, gt_dir


class TransformTest(_TmpDirTest):

  def test_dihedral_eight_distinct_and_reference_modes(self):
    img = np.random.default_rng(0).integers(0, 255, (5, 5, 3), np.uint8)
    outs = [ip.dihedral(img, k) for k in range(8)]
    for i in range(8):
      for j in range(i + 1, 8):
        self.assertFalse(np.array_equal(outs[i], outs[j]), (i, j))
    np.testing.assert_array_equal(outs[0], img)
    np.testing.assert_array_equal(outs[1], np.flipud(img))
    np.testing.assert_array_equal(outs[2], np.rot90(img))
    np.testing.assert_array_equal(outs[3], np.flipud(np.rot90(img)))
    np.testing.assert_array_equal(outs[6], np.rot90(img, 3))
    with self.assertRaises(ValueError):
      ip.dihedral(img, 8)

  def test_augment_dihedral_is_joint(self):
    gt = np.random.default_rng(1).integers(0, 255, (4, 6, 3), np.uint8)
    for k in range(8):
      lq_k, gt_k = ip.augment_dihedral(gt // 2, gt, k)
      np.testing.assert_array_equal(lq_k, gt_k // 2)
      np.testing.assert_array_equal(gt_k, ip.dihedral(gt, k))

  def test_reflect_pad_mirrors_including_edge(self):
    img = np.arange(5 * 3 * 1).reshape(5, 3, 1).astype(np.uint8)
    out = ip.reflect_pad_to(img, 8)
    self.assertEqual(out.shape, (8, 8, 1))
    np.testing.assert_array_equal(out[:5, :3], img)
    # Edge-including mirror (cv2.BORDER_REFLECT): row 5 repeats row 4.
    np.testing.assert_array_equal(out[5, :3], img[4])
    np.testing.assert_array_equal(out[6, :3], img[3])
    np.testing.assert_array_equal(out[7, :3], img[2])
    np.testing.assert_array_equal(out[:5, 3], img[:, 2])
    np.testing.assert_array_equal(out[:5, 4], img[:, 1])
    np.testing.assert_array_equal(out[:5, 5], img[:, 0])
    np.testing.assert_array_equal(out[:5, 6], img[:, 0])  # Mirrors back.
    self.assertIs(ip.reflect_pad_to(img, 3), img)


class SourceTest(_TmpDirTest):

  def test_records(self):
    lq_dir, gt_dir = self.make_pairs([(10, 12), (7, 9)])
    src = ip.PairedFolderSource(lq_dir, gt_dir)
    self.assertLen(src, 2)
    rec = src[1]
    self.assertEqual(rec['name'], '001')
    self.assertEqual(rec['gt'].dtype, np.uint8)
    self.assertEqual(rec['gt'].shape, (7, 9, 3))
    np.testing.assert_array_equal(rec['gt'], _coord_image(7, 9, 1))
    np.testing.assert_array_equal(rec['lq'], rec['gt'] // 2)

  def test_conversions(self):
    lq_dir = os.path.join(self.root, 'c', 'low')
    gt_dir = os.path.join(self.root, 'c', 'high')
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (6, 7), np.uint8)
    rgba = rng.integers(0, 255, (6, 7, 4), np.uint8)
    rgba[0, 0, 3] = 0  # Fully transparent: RGB kept, not composited.
    g16 = rng.integers(0, 65536, (6, 7), np.uint16)
    g16[0, :3] = [0, 255, 65535]
    c16 = rng.integers(0, 65536, (6, 7, 3), np.uint16)
    c16[0, 0] = [256, 511, 65535]
    rgb = rng.integers(0, 255, (6, 7, 3), np.uint8)
    _save(os.path.join(lq_dir, 'a.png'), gray)
    _save(os.path.join(lq_dir, 'b.png'), rgba)
    _save(os.path.join(lq_dir, 'c.png'), g16)
    _png16(os.path.join(lq_dir, 'd.png'), c16)
    for n in 'abcd':
      _save(os.path.join(gt_dir, f'{n}.png'), rgb)
    with Image.open(os.path.join(lq_dir, 'c.png')) as im:
      self.assertEqual(im.mode, 'I;16')
    src = ip.PairedFolderSource(lq_dir, gt_dir)
    recs = {r['name']: r['lq'] for r in (src[i] for i in range(len(src)))}
    for r in recs.values():
      self.assertEqual((r.dtype, r.shape), (np.uint8, (6, 7, 3)))
    np.testing.assert_array_equal(recs['a'], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(recs['b'], rgba[..., :3])
    expected16 = np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, -1)
    np.testing.assert_array_equal(recs['c'], expected16)
    np.testing.assert_array_equal(recs['c'][0, :3, 0], [0, 0, 255])
    np.testing.assert_array_equal(recs['d'], (c16 >> 8).astype(np.uint8))
    np.testing.assert_array_equal(recs['d'][0, 0], [1, 1, 255])

  def test_prefix_match(self):
    lq_dir = os.path.join(self.root, 'p', 'low')
    gt_dir = os.path.join(self.root, 'p', 'high')
    img = np.zeros((4, 4, 3), np.uint8)
    _save(os.path.join(lq_dir, '1_low.png'), img)
    _save(os.path.join(lq_dir, '2_low_x.png'), img + 1)
    _save(os.path.join(gt_dir, '1_normal.png'), img + 2)
    _save(os.path.join(gt_dir, '2.png'), img + 3)
    with self.assertRaisesRegex(ValueError, '1_low.png'):
      ip.PairedFolderSource(lq_dir, gt_dir)
    src = ip.PairedFolderSource(lq_dir, gt_dir, prefix_match=True)
    self.assertEqual(src.names, ['1_low', '2_low_x'])
    self.assertEqual(int(src[0]['gt'][0, 0, 0]), 2)
    self.assertEqual(int(src[1]['gt'][0, 0, 0]), 3)
    _save(os.path.join(gt_dir, '2_dup.png'), img)
    with self.assertRaisesRegex(ValueError, r'2\.png.*2_dup\.png'):
      ip.PairedFolderSource(lq_dir, gt_dir, prefix_match=True)


class ErrorTest(_TmpDirTest):

  def test_missing_folder(self):
    lq_dir, _ = self.make_pairs([(4, 4)])
    missing = os.path.join(self.root, 'nope')
    with self.assertRaisesRegex(FileNotFoundError, 'nope'):
      ip.PairedFolderSource(lq_dir, missing)
    with self.assertRaisesRegex(FileNotFoundError, 'nope'):
      ip.PairedFolderSource(missing, lq_dir)

  def test_empty_folder(self):
    lq_dir, _ = self.make_pairs([(4, 4)])
    empty = os.path.join(self.root, 'empty')
    os.makedirs(empty)
    with open(os.path.join(empty, 'notes.txt'), 'w') as f:
      f.write('not an image')
    with self.assertRaisesRegex(ValueError, 'empty'):
      ip.PairedFolderSource(lq_dir, empty)

  def test_unmatched_names_listed(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4), (4, 4)])
    _save(os.path.join(lq_dir, 'extra_lq.png'), np.zeros((4, 4, 3), np.uint8))
    _save(os.path.join(gt_dir, 'only_gt.png'), np.zeros((4, 4, 3), np.uint8))
    with self.assertRaisesRegex(ValueError, 'extra_lq.png') as cm:
      ip.PairedFolderSource(lq_dir, gt_dir)
    self.assertIn('only_gt.png', str(cm.exception))
    self.assertNotIn('000.png', str(cm.exception))

  def test_corrupt_file(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4), (4, 4)])
    with open(os.path.join(gt_dir, '001.png'), 'wb') as f:
      f.write(b'this is not a png')
    bad = os.path.join(gt_dir, '001.png')
    with self.assertRaisesRegex(ValueError, bad):
      ip.PairedFolderSource(lq_dir, gt_dir)
    src = ip.PairedFolderSource(lq_dir, gt_dir, validate=False)
    src[0]  # The intact pair still reads.
    with self.assertRaisesRegex(ValueError, bad):
      src[1]

  def test_truncated_file(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4)])
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    path = _save(os.path.join(lq_dir, '001.png'), noise)
    _save(os.path.join(gt_dir, '001.png'), noise)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[: len(data) // 2])
    src = ip.PairedFolderSource(lq_dir, gt_dir)  # Header is intact.
    with self.assertRaisesRegex(ValueError, path):
      src[1]
    ds = ip.train_dataset(src, patch_size=4, batch_size=2, seed=0)
    with self.assertRaisesRegex(ValueError, '001.png'):
      next(iter(ds))

  def test_size_mismatch(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4), (6, 5)])
    bad = _save(os.path.join(gt_dir, '001.png'), np.zeros((6, 4, 3), np.uint8))
    with self.assertRaisesRegex(ValueError, 'Size mismatch.*001.png') as cm:
      ip.PairedFolderSource(lq_dir, gt_dir)
    self.assertIn(bad, str(cm.exception))
    src = ip.PairedFolderSource(lq_dir, gt_dir, validate=False)
    with self.assertRaisesRegex(ValueError, bad):
      src[1]


class TrainDatasetTest(_TmpDirTest):

  def setUp(self):
    super().setUp()
    shapes = [(20, 24), (24, 20), (18, 30), (22, 22), (19, 21)]
    self.src = ip.PairedFolderSource(*self.make_pairs(shapes))

  def take(self, ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]

  def test_shapes_alignment_and_augmentation(self):
    ds = ip.train_dataset(self.src, patch_size=12, batch_size=4, seed=0)
    seen_transforms = set()
    for batch in self.take(ds, 6):
      self.assertEqual(set(batch), {'lq', 'gt'})
      for key in ('lq', 'gt'):
        self.assertEqual(batch[key].shape, (4, 12, 12, 3))
        self.assertEqual(batch[key].dtype, np.float32)
        self.assertTrue(0.0 <= batch[key].min() <= batch[key].max() <= 1.0)
      lq, gt = _u8(batch['lq']), _u8(batch['gt'])
      np.testing.assert_array_equal(lq, gt // 2)  # Same window, same k.
      for patch in gt:
        # Exactly one inverse dihedral makes it a contiguous window.
        ks = [k for k in range(8) if _is_window(ip.dihedral(patch, k))]
        self.assertLen(ks, 1)
        seen_transforms.add(ks[0])
    self.assertGreater(len(seen_transforms), 3)

  def test_no_augs_gives_plain_windows(self):
    ds = ip.train_dataset(
        self.src, patch_size=8, batch_size=5, seed=3, geometric_augs=False
    )
    for patch in _u8(self.take(ds, 2)[1]['gt']):
      self.assertTrue(_is_window(patch))

  def test_pads_small_images(self):
    lq_dir, gt_dir = self.make_pairs([(6, 5)], name='small')
    src = ip.PairedFolderSource(lq_dir, gt_dir)
    ds = ip.train_dataset(
        src, patch_size=8, batch_size=1, seed=0, geometric_augs=False
    )
    gt = _coord_image(6, 5, 0)
    expected = np.pad(gt, [(0, 2), (0, 3), (0, 0)], mode='symmetric')
    batch = self.take(ds, 1)[0]
    np.testing.assert_array_equal(_u8(batch['gt'][0]), expected)
    np.testing.assert_array_equal(_u8(batch['lq'][0]), expected // 2)
    np.testing.assert_array_equal(expected[6, :5, 0], [5] * 5)  # Edge again.

  def test_deterministic_per_seed(self):
    kw = dict(patch_size=10, batch_size=3)
    a = self.take(ip.train_dataset(self.src, seed=7, **kw), 4)
    b = self.take(ip.train_dataset(self.src, seed=7, **kw), 4)
    c = self.take(ip.train_dataset(self.src, seed=8, **kw), 4)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x['lq'], y['lq'])
      np.testing.assert_array_equal(x['gt'], y['gt'])
    self.assertFalse(
        all(np.array_equal(x['gt'], z['gt']) for x, z in zip(a, c))
    )

  def test_threads_give_same_stream(self):
    kw = dict(patch_size=10, batch_size=3, seed=5)
    a = self.take(ip.train_dataset(self.src, **kw), 3)
    b = self.take(ip.train_dataset(self.src, num_threads=2, **kw), 3)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x['gt'], y['gt'])

  def test_epochs_cover_records_and_reshuffle(self):
    ds = ip.train_dataset(
        self.src, patch_size=8, batch_size=5, seed=1, num_epochs=3
    )
    batches = list(ds)
    self.assertLen(batches, 3)
    orders = [tuple(_u8(b['gt'])[:, 0, 0, 2]) for b in batches]
    for order in orders:
      self.assertCountEqual(order, range(5))
    self.assertGreater(len(set(orders)), 1)
    with self.assertRaises(ValueError):
      ip.train_dataset(
          self.src, patch_size=8, batch_size=6, seed=1, num_epochs=1
      )

  def test_sharding(self):
    ids = []
    for shard in range(2):
      ds = ip.train_dataset(
          self.src,
          patch_size=8,
          batch_size=1,
          seed=0,
          num_epochs=1,
          shard_index=shard,
          shard_count=2,
      )
      ids.append(sorted(int(_u8(b['gt'])[0, 0, 0, 2]) for b in ds))
    self.assertEqual(ids, [[0, 2, 4], [1, 3]])

  @parameterized.parameters(0, 2)
  def test_state_round_trip_resumes_stream(self, num_threads):
    def make():
      return ip.train_dataset(
          self.src,
          patch_size=8,
          batch_size=2,
          seed=11,
          num_threads=num_threads,
      )

    it = iter(make())
    for _ in range(3):
      next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]  # Crosses epoch boundaries.
    it2 = iter(make())
    next(it2)  # A different position, overwritten by set_state.
    it2.set_state(state)
    for want in expected:
      got = next(it2)
      np.testing.assert_array_equal(got['lq'], want['lq'])
      np.testing.assert_array_equal(got['gt'], want['gt'])


class ProgressiveCropTest(_TmpDirTest):

  STAGES = dict(
      mini_batch_sizes=[4, 2, 1], gt_sizes=[8, 12, 16], stage_steps=[3, 2, 4]
  )

  def batch(self):
    gt = np.stack([_coord_image(16, 16, i) for i in range(4)]) / 255.0
    return {'lq': (gt / 2).astype(np.float32), 'gt': gt.astype(np.float32)}

  def test_stage_for_step(self):
    stages = [ip.stage_for_step(s, [3, 2, 4]) for s in range(10)]
    self.assertEqual(stages, [0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    self.assertEqual(ip.stage_for_step(10**6, [3, 2, 4]), 2)
    self.assertEqual(ip.stage_for_step(91999, [92000, 80000]), 0)
    self.assertEqual(ip.stage_for_step(92000, [92000, 80000]), 1)
    with self.assertRaises(ValueError):
      ip.stage_for_step(-1, [3])

  @parameterized.parameters((0, 4, 8), (2, 4, 8), (3, 2, 12), (5, 1, 16))
  def test_sizes_and_alignment(self, step, b, g):
    out = ip.progressive_crop(self.batch(), step=step, seed=0, **self.STAGES)
    self.assertEqual(out['lq'].shape, (b, g, g, 3))
    self.assertEqual(out['gt'].shape, (b, g, g, 3))
    self.assertIsInstance(out['lq'], np.ndarray)
    np.testing.assert_allclose(out['lq'], out['gt'] / 2, atol=1e-7)
    gt = _u8(out['gt'])
    ids = gt[:, 0, 0, 2]
    self.assertLen(set(ids.tolist()), b)  # Distinct samples.
    for patch in gt:
      self.assertTrue(_is_window(patch))
      # Same window for every sample.
      np.testing.assert_array_equal(patch[..., :2], gt[0, ..., :2])

  def test_deterministic_from_seed_and_step(self):
    batch = self.batch()

    def crop(step, seed):
      out = ip.progressive_crop(batch, step=step, seed=seed, **self.STAGES)
      gt = _u8(out['gt'])
      # (top-left (row, col) of the window, ids of the picked samples).
      return tuple(gt[0, 0, 0, :2]), tuple(gt[:, 0, 0, 2])

    self.assertEqual(crop(1, 4), crop(1, 4))
    a = ip.progressive_crop(batch, step=4, seed=2, **self.STAGES)
    b = ip.progressive_crop(batch, step=4, seed=2, **self.STAGES)
    np.testing.assert_array_equal(a['gt'], b['gt'])
    # Window and subset change with the step and with the seed.
    self.assertGreater(len({crop(s, 4)[0] for s in range(3)}), 1)
    self.assertGreater(len({crop(1, s)[0] for s in range(5)}), 1)
    self.assertGreater(len({crop(3, s)[1] for s in range(6)}), 1)
    self.assertGreater(len({crop(s, 0)[1] for s in (3, 4)} |
                           {crop(s, 1)[1] for s in (3, 4)}), 1)

  def test_errors(self):
    with self.assertRaises(ValueError):
      ip.progressive_crop(
          self.batch(),
          step=0,
          seed=0,
          mini_batch_sizes=[1],
          gt_sizes=[32],
          stage_steps=[5],
      )
    with self.assertRaises(ValueError):
      ip.progressive_crop(
          self.batch(),
          step=0,
          seed=0,
          mini_batch_sizes=[1, 1],
          gt_sizes=[8],
          stage_steps=[5],
      )


class EvalDatasetTest(_TmpDirTest):

  def test_full_images_in_order(self):
    shapes = [(10, 12), (7, 9), (13, 8)]
    src = ip.PairedFolderSource(*self.make_pairs(shapes))
    items = list(ip.eval_dataset(src))
    self.assertEqual([x['name'] for x in items], ['000', '001', '002'])
    for i, (item, (h, w)) in enumerate(zip(items, shapes)):
      self.assertEqual(item['lq'].shape, (1, h, w, 3))
      self.assertEqual(item['gt'].dtype, np.float32)
      gt = _coord_image(h, w, i)
      np.testing.assert_array_equal(_u8(item['gt'][0]), gt)
      np.testing.assert_array_equal(_u8(item['lq'][0]), gt // 2)
    again = list(ip.eval_dataset(src, batch_axis=False))  # Re-iterable.
    self.assertEqual(again[2]['gt'].shape, (13, 8, 3))
    np.testing.assert_array_equal(again[2]['gt'], items[2]['gt'][0])


if __name__ == '__main__':
  absltest.main()
