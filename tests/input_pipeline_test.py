"""Tests for restorect_jax.data.input_pipeline on small generated PNG pairs."""

import json
import multiprocessing
import os
import shutil
import tempfile

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from PIL import Image

import testutil
from restorect_jax.data import input_pipeline as ip


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


class _MemorySource:
  """In-memory random-access source: record i is a flat image of value i."""

  def __init__(self, n: int, hw: tuple[int, int] = (6, 5)):
    self.n, self.hw = n, hw

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i):
    gt = np.full((*self.hw, 3), int(i), np.uint8)
    return {'lq': gt // 2, 'gt': gt, 'name': str(int(i)).encode()}  # bytes.


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

  @parameterized.parameters(1, 2, 3, 4, 7)
  def test_host_shards_disjoint_and_cover(self, hosts):
    # Any random-access source works (here an in-memory one, as a TFDS
    # data_source would be): N hosts read disjoint records covering the set.
    src = _MemorySource(7)
    train_ids, eval_names = [], []
    for host in range(hosts):
      ds = ip.train_dataset(
          src, patch_size=4, batch_size=1, seed=5, num_epochs=1,
          shard_index=host, shard_count=hosts,
      )
      train_ids.append([int(_u8(b['gt'])[0, 0, 0, 0]) for b in ds])
      eval_names.append([
          r['name'] for r in ip.eval_dataset(
              src, shard_index=host, shard_count=hosts)
      ])
    for per_host in (train_ids, [[int(n) for n in e] for e in eval_names]):
      flat = [i for ids in per_host for i in ids]
      self.assertLen(flat, 7)  # Disjoint: no record twice.
      self.assertCountEqual(flat, range(7))  # Covering: every record.
      self.assertEqual([len(ids) for ids in per_host],
                       [len(range(h, 7, hosts)) for h in range(hosts)])
    with self.assertRaisesRegex(ValueError, 'shard'):
      ip.train_dataset(src, patch_size=4, batch_size=1, seed=0,
                       shard_index=2, shard_count=2)
    with self.assertRaisesRegex(ValueError, 'no records'):
      ip.train_dataset(src, patch_size=4, batch_size=1, seed=0,
                       shard_index=7, shard_count=8)

  @parameterized.named_parameters(
      ('in_process', 0, 0, 'none'),
      ('threads', 2, 0, 'none'),
      ('square_resize', 0, 0, 'square'),
      ('multiple_of_32', 0, 0, 'multiple_of_32'),
      ('workers_and_resize', 0, 2, 'square'),
  )
  def test_state_round_trip_resumes_stream(
      self, num_threads, num_workers, resize
  ):
    def make(workers):
      return ip.train_dataset(
          self.src,
          patch_size=8,
          batch_size=2,
          seed=11,
          num_threads=num_threads,
          resize=resize,
          resize_size=14,
          num_workers=workers,
      )

    def open_iter(workers):
      it = iter(make(workers))
      self.addCleanup(it.close)  # Stops worker processes.
      return it

    # The stream does not depend on threads or worker processes.
    ref_it = open_iter(0)
    reference = [next(ref_it) for _ in range(9)]
    it = open_iter(num_workers)
    for want in reference[:3]:
      got = next(it)
      np.testing.assert_array_equal(got['gt'], want['gt'])
    if num_workers:  # The batches really came from worker processes.
      self.assertGreaterEqual(
          len(multiprocessing.active_children()), num_workers
      )
    state = it.get_state()
    expected = [next(it) for _ in range(5)]  # Crosses epoch boundaries.
    for got, want in zip(expected, reference[3:8], strict=True):
      self.assertIs(type(got['lq']), np.ndarray)
      np.testing.assert_array_equal(got['lq'], want['lq'])
      np.testing.assert_array_equal(got['gt'], want['gt'])
    it2 = open_iter(num_workers)
    next(it2)  # A different position, overwritten by set_state.
    it2.set_state(state)
    for want in expected:
      got = next(it2)
      np.testing.assert_array_equal(got['lq'], want['lq'])
      np.testing.assert_array_equal(got['gt'], want['gt'])
    # The state does not depend on the worker count: a run may resume with
    # other num_workers (e.g. a checkpoint written without workers).
    in_process = open_iter(0)
    for _ in range(3):
      next(in_process)
    self.assertEqual(in_process.get_state(), state)
    in_process.set_state(it2.get_state())
    np.testing.assert_array_equal(next(in_process)['gt'], reference[8]['gt'])

  def test_workers_finite_epochs(self):
    kw = dict(patch_size=8, batch_size=2, seed=2, num_epochs=2)
    want = list(ip.train_dataset(self.src, **kw))
    it = iter(ip.train_dataset(self.src, num_workers=2, **kw))
    self.addCleanup(it.close)
    got = list(it)
    self.assertLen(got, len(want))  # 5 records x 2 epochs // 2.
    for g, w in zip(got, want, strict=True):
      np.testing.assert_array_equal(g['gt'], w['gt'])
    with self.assertRaises(StopIteration):
      next(it)

  def test_bad_worker_arguments(self):
    with self.assertRaises(ValueError):
      ip.train_dataset(
          self.src, patch_size=8, batch_size=2, seed=0, num_workers=-1
      )
    with self.assertRaisesRegex(ValueError, 'resize'):
      ip.train_dataset(
          self.src, patch_size=8, batch_size=2, seed=0, resize='bilinear'
      )


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


class ResizeTest(_TmpDirTest):

  @parameterized.parameters(
      ('none', (400, 600), (400, 600)),
      ('square', (400, 600), (16, 16)),
      ('multiple_of_32', (400, 600), (416, 608)),
      ('multiple_of_32', (64, 96), (64, 96)),
      ('multiple_of_32', (1, 33), (32, 64)),
      # Long side capped at 2048, short side floor(short * 2048 / long),
      # then rounded up to a multiple of 32.
      ('multiple_of_32', (3000, 4000), (1536, 2048)),
      ('multiple_of_32', (4000, 3000), (2048, 1536)),
      ('multiple_of_32', (2049, 100), (2048, 128)),  # 99 -> 128.
      ('multiple_of_32', (2048, 2048), (2048, 2048)),
      ('multiple_of_32', (2500, 2500), (2048, 2048)),
  )
  def test_resized_shape(self, mode, hw, want):
    self.assertEqual(ip.resized_shape(*hw, mode, size=16), want)

  def test_resized_shape_errors(self):
    with self.assertRaisesRegex(ValueError, 'bilinear'):
      ip.resized_shape(4, 4, 'bilinear')
    with self.assertRaisesRegex(ValueError, 'resize_size'):
      ip.resized_shape(4, 4, 'square', size=0)

  def test_hand_computed_upsampling(self):
    # [0, 1] -> 4 samples at source positions -0.25, 0.25, 0.75, 1.25 with
    # the a = -0.75 Keys kernel, taps clamped to the edge pixels. For t =
    # 0.25 the weights are (-0.10546875, 0.87890625, 0.26171875,
    # -0.03515625) and mirrored for t = 0.75, so e.g. out[1] = 0.26171875 -
    # 0.03515625 = 0.2265625 and out[0] = -0.10546875 (overshoot, unclipped).
    row = np.array([[0.0, 1.0]], np.float32)
    out = ip.resize_bicubic(row, 1, 4)
    np.testing.assert_array_equal(
        out, [[-0.10546875, 0.2265625, 0.7734375, 1.10546875]]
    )
    np.testing.assert_array_equal(ip.resize_bicubic(row.T, 4, 1), out.T)

  def test_identity_constant_and_uint8(self):
    img = np.random.default_rng(0).integers(0, 256, (9, 7, 3), np.uint8)
    same = ip.resize_bicubic(img, 9, 7)
    self.assertEqual(same.dtype, np.float32)
    # uint8 becomes x * float32(1 / 255), then the identity resize copies it.
    np.testing.assert_array_equal(
        same, img.astype(np.float32) * np.float32(1.0 / 255.0))
    flat = np.full((5, 6, 3), 0.3, np.float32)
    np.testing.assert_allclose(
        ip.resize_bicubic(flat, 13, 4), 0.3, rtol=0, atol=1e-6
    )
    with self.assertRaises(ValueError):
      ip.resize_bicubic(img, 0, 4)

  @parameterized.parameters(
      ((17, 23), (40, 9)), ((30, 30), (64, 64)), ((60, 45), (20, 33))
  )
  def test_matches_torch_bicubic(self, hw, out_hw):
    # PyTorch's bicubic (align_corners=False) uses OpenCV INTER_CUBIC's
    # kernel, positions and edge clamping; only float32 rounding differs.
    import torch  # pylint: disable=g-import-not-at-top

    img = np.random.default_rng(1).random((*hw, 3), dtype=np.float32)
    ours = ip.resize_bicubic(img, *out_hw)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    ref = torch.nn.functional.interpolate(
        x, size=out_hw, mode='bicubic', align_corners=False
    )[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5)
    self.assertLess(ours.min(), 0.0)  # Overshoot is kept, as cv2 does.

  def test_resize_pair_is_joint(self):
    gt = np.random.default_rng(2).integers(0, 256, (20, 26, 3), np.uint8)
    lq, gt_r = ip.resize_pair(255 - gt, gt, 'multiple_of_32')
    self.assertEqual(gt_r.shape, (32, 32, 3))
    np.testing.assert_allclose(lq + gt_r, 1.0, atol=1e-5)
    lq8, gt8 = ip.resize_pair(gt // 2, gt, 'none')
    self.assertEqual(gt8.dtype, np.uint8)  # 'none' leaves records alone.
    with self.assertRaisesRegex(ValueError, 'differ'):
      ip.resize_pair(gt[:5], gt, 'square')


class TrainResizeTest(_TmpDirTest):
  """train_dataset with the reference's resize modes."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(3)
    self.gts = [
        rng.integers(0, 256, hw + (3,), np.uint8)
        for hw in [(20, 24), (24, 20), (18, 30)]
    ]
    lq_dir = os.path.join(self.root, 'r', 'low')
    gt_dir = os.path.join(self.root, 'r', 'high')
    for i, gt in enumerate(self.gts):
      _save(os.path.join(gt_dir, f'{i}.png'), gt)
      _save(os.path.join(lq_dir, f'{i}.png'), 255 - gt)  # lq + gt = 1.
    self.src = ip.PairedFolderSource(lq_dir, gt_dir)

  def test_square_is_the_whole_resized_image(self):
    # 'chaos' (UIEB/LSUI): patch == resize_size keeps the whole image.
    ds = ip.train_dataset(
        self.src, patch_size=16, batch_size=3, seed=0, resize='square',
        resize_size=16,
    )
    resized = [ip.resize_bicubic(g, 16, 16) for g in self.gts]
    it = iter(ds)
    batches = [next(it) for _ in range(3)]
    for batch in batches:
      self.assertEqual(batch['gt'].shape, (3, 16, 16, 3))
      np.testing.assert_allclose(batch['lq'] + batch['gt'], 1.0, atol=1e-5)
      for patch in batch['gt']:
        matches = [
            (i, k) for i, r in enumerate(resized) for k in range(8)
            if np.array_equal(patch, ip.dihedral(r, k))
        ]
        self.assertNotEmpty(matches)

  def test_multiple_of_32_then_crop(self):
    ds = ip.train_dataset(
        self.src, patch_size=12, batch_size=3, seed=1,
        resize='multiple_of_32', geometric_augs=False,
    )
    resized = [ip.resize_bicubic(g, 32, 32) for g in self.gts]  # All 32x32.
    batch = next(iter(ds))
    self.assertEqual(batch['gt'].shape, (3, 12, 12, 3))
    np.testing.assert_allclose(batch['lq'] + batch['gt'], 1.0, atol=1e-5)
    for patch in batch['gt']:
      found = any(
          np.array_equal(patch, r[y : y + 12, x : x + 12])
          for r in resized for y in range(21) for x in range(21)
      )
      self.assertTrue(found)

  def test_resize_deterministic(self):
    kw = dict(patch_size=10, batch_size=2, resize='square', resize_size=14)
    a = next(iter(ip.train_dataset(self.src, seed=4, **kw)))
    b = next(iter(ip.train_dataset(self.src, seed=4, **kw)))
    np.testing.assert_array_equal(a['gt'], b['gt'])
    np.testing.assert_array_equal(a['lq'], b['lq'])


class EvalPaddingTest(_TmpDirTest):

  def test_pad_to_multiple_keeps_gt_and_hw(self):
    shapes = [(10, 12), (7, 9), (13, 8)]
    src = ip.PairedFolderSource(*self.make_pairs(shapes))
    items = list(ip.eval_dataset(src, pad_multiple=8))
    self.assertEqual(
        [x['lq'].shape[1:3] for x in items], [(16, 16), (8, 16), (16, 8)]
    )
    for i, (item, (h, w)) in enumerate(zip(items, shapes, strict=True)):
      self.assertEqual(item['hw'], (h, w))
      self.assertEqual(item['gt'].shape, (1, h, w, 3))  # Never padded.
      lq = _coord_image(h, w, i) // 2
      ph, pw = item['lq'].shape[1] - h, item['lq'].shape[2] - w
      # Reflect (edge not repeated), as the reference's inference F.pad.
      want = np.pad(lq, [(0, ph), (0, pw), (0, 0)], mode='reflect')
      np.testing.assert_array_equal(_u8(item['lq'][0]), want)
    plain = list(ip.eval_dataset(src))
    self.assertEqual(plain[1]['lq'].shape, (1, 7, 9, 3))  # Default: no pad.
    self.assertEqual(plain[1]['hw'], (7, 9))

  def test_buckets_give_few_shapes(self):
    rng = np.random.default_rng(7)
    shapes = [
        (int(rng.integers(97, 129)), int(rng.integers(129, 161)))
        for _ in range(10)
    ]
    src = ip.PairedFolderSource(*self.make_pairs(shapes))

    def padded_shapes(**kw):
      return [
          x['lq'].shape[:2]
          for x in ip.eval_dataset(src, batch_axis=False, **kw)
      ]

    exact = padded_shapes(pad_multiple=8)
    buckets = padded_shapes(bucket=True)
    self.assertLessEqual(len(set(buckets)), 2)  # 112 or 128 x 160.
    self.assertGreater(len(set(exact)), len(set(buckets)))
    for (h, w), shape in zip(shapes, buckets, strict=True):
      self.assertEqual(shape, ip.tiling.bucket_shape(h, w))
      self.assertTrue(shape[0] % 8 == 0 and shape[1] % 8 == 0)
    # A wide range of sizes still lands on the bucket grid only.
    wide = [(20, 300), (33, 65), (150, 150), (255, 64), (64, 255), (100, 9)]
    src = ip.PairedFolderSource(*self.make_pairs(wide, name='wide'))
    grid = {64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
    for shape in padded_shapes(bucket=True):
      self.assertLessEqual(set(shape), grid)

  def test_eval_resize_modes(self):
    src = ip.PairedFolderSource(*self.make_pairs([(20, 26), (9, 40)]))
    square = list(ip.eval_dataset(src, resize='square', resize_size=16))
    for item in square:
      self.assertEqual(item['gt'].shape, (1, 16, 16, 3))
      self.assertEqual(item['hw'], (16, 16))
    np.testing.assert_array_equal(
        square[0]['gt'][0], ip.resize_bicubic(_coord_image(20, 26, 0), 16, 16)
    )
    m32 = list(ip.eval_dataset(src, resize='multiple_of_32', pad_multiple=8))
    self.assertEqual([x['gt'].shape[1:3] for x in m32], [(32, 32), (32, 64)])
    self.assertEqual([x['lq'].shape[1:3] for x in m32], [(32, 32), (32, 64)])


class BadInputTest(_TmpDirTest):
  """Item 5: every bad input is an error naming the file, or documented."""

  def test_folder_path_is_a_file(self):
    lq_dir, _ = self.make_pairs([(4, 4)])
    a_file = os.path.join(lq_dir, '000.png')
    with self.assertRaisesRegex(FileNotFoundError, 'not a folder.*000.png'):
      ip.PairedFolderSource(lq_dir, a_file)

  def test_corrupt_file_through_eval_dataset(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4), (4, 4)])
    bad = os.path.join(lq_dir, '001.png')
    with open(bad, 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n garbage')
    src = ip.PairedFolderSource(lq_dir, gt_dir, validate=False)
    with self.assertRaisesRegex(ValueError, bad):
      list(ip.eval_dataset(src))

  def test_size_mismatch_through_train_dataset(self):
    lq_dir, gt_dir = self.make_pairs([(8, 8), (8, 8)])
    bad = _save(os.path.join(gt_dir, '001.png'), np.zeros((8, 9, 3), np.uint8))
    src = ip.PairedFolderSource(lq_dir, gt_dir, validate=False)
    ds = ip.train_dataset(src, patch_size=4, batch_size=2, seed=0)
    with self.assertRaisesRegex(ValueError, bad):
      next(iter(ds))

  def test_non_images_ignored_case_insensitive_extensions_kept(self):
    lq_dir, gt_dir = self.make_pairs([(4, 4)])
    img = np.zeros((4, 4, 3), np.uint8)
    _save(os.path.join(lq_dir, 'UPPER.PNG'), img)
    _save(os.path.join(gt_dir, 'UPPER.png'), img)
    for folder in (lq_dir, gt_dir):
      with open(os.path.join(folder, 'notes.txt'), 'w') as f:
        f.write('x')
      with open(os.path.join(folder, '.hidden.png'), 'wb') as f:
        f.write(b'not read')
    src = ip.PairedFolderSource(lq_dir, gt_dir)
    self.assertEqual(src.names, ['000', 'UPPER'])

  def test_tiny_image_smaller_than_patch(self):
    # A 1x2 pair padded to 8x8 by repeated edge-including mirroring.
    lq_dir, gt_dir = self.make_pairs([(1, 2)], name='tiny')
    src = ip.PairedFolderSource(lq_dir, gt_dir)
    ds = ip.train_dataset(
        src, patch_size=8, batch_size=1, seed=0, geometric_augs=False
    )
    gt = _u8(next(iter(ds))['gt'][0])
    want = np.pad(_coord_image(1, 2, 0), [(0, 7), (0, 6), (0, 0)],
                  mode='symmetric')
    np.testing.assert_array_equal(gt, want)
    self.assertEqual(set(gt[0, :, 1].tolist()), {0, 1})


class CachedSourceTest(_TmpDirTest):
  """``sources.CachedSource``: decoded records kept up to a byte budget."""

  class _Counting(_MemorySource):

    def __init__(self, *a, **kw):
      super().__init__(*a, **kw)
      self.reads = []

    def __getitem__(self, i):
      if not -self.n <= i < self.n:
        raise IndexError(f'Index {i} out of range for {self.n} pairs.')
      self.reads.append(int(i) % self.n)
      return super().__getitem__(int(i) % self.n)

  def test_reads_each_record_once_and_returns_copies(self):
    from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
    src = self._Counting(3)
    cached = sources.CachedSource(src, 2**20)
    first = cached[1]
    first['gt'][:] = 255  # a consumer writing in place...
    again = cached[-2]  # ...does not reach the cache; -2 is record 1
    self.assertEqual(src.reads, [1])
    np.testing.assert_array_equal(again['gt'], np.full((6, 5, 3), 1))
    self.assertEqual(again['name'], b'1')
    self.assertLen(cached, 3)
    self.assertEqual(cached.hw, (6, 5))  # attributes of the source

  def test_budget_and_errors(self):
    import pickle  # pylint: disable=g-import-not-at-top
    from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
    src = self._Counting(3)
    one = 2 * 6 * 5 * 3  # bytes of lq + gt of one record
    cached = sources.CachedSource(src, one)
    for i in (0, 1, 0, 1):
      cached[i]
    self.assertEqual(src.reads, [0, 1, 1])  # only record 0 fits
    with self.assertRaisesRegex(IndexError, 'out of range for 3'):
      cached[3]
    clone = pickle.loads(pickle.dumps(cached))  # a worker: empty cache
    clone[0]
    self.assertEqual(clone.source.reads[-1], 0)
    self.assertEqual(clone.max_bytes, one)


class DemoSetFromConfigTest(_TmpDirTest):

  def test_demo_config_builds_its_train_photos(self):
    from restorect_jax import config_lib  # pylint: disable=g-import-not-at-top
    from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
    c = config_lib.load(config_lib.repo_configs('demo.py'), 'stage=s1')
    c.input.data_dir = os.path.join(self.root, 'demo')
    root = sources.data_dir(c, self.root)
    with open(os.path.join(root, 'manifest.json')) as f:
      params = json.load(f)['params']
    self.assertEqual(params['train_photos'], list(c.input.demo_photos))
    self.assertNotIn('immunohistochemistry', params['train_photos'])
    self.assertEqual(params['train_crops_per_image'], c.input.demo_crops)
    self.assertLen(os.listdir(os.path.join(root, 'train', 'low')),
                   len(c.input.demo_photos) * c.input.demo_crops)


if __name__ == '__main__':
  absltest.main()
