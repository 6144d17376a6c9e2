"""Tests for restorect_jax.inference.tiling: padding, buckets, tiles, x8."""

import itertools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from restorect_jax.data import input_pipeline
from restorect_jax.inference import tiling

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pointwise(x):
  """An elementwise (pointwise) predictor: tiling cannot change it."""
  return jnp.tanh(3.0 * x - 1.0) * 0.5 + x * x


def _box3(x):
  """3x3 mean with zero padding ('SAME' conv): receptive radius 1."""
  h, w = x.shape[1:3]
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  total = sum(
      p[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)
  )
  return total / 9.0


class _Recorder:
  """Wraps a predictor and records the input shapes it was called with."""

  def __init__(self, fn):
    self.fn = jax.jit(fn)
    self.shapes = []

  def __call__(self, x):
    self.shapes.append(tuple(x.shape))
    return self.fn(x)


def _image(h, w, c=3, seed=0):
  return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


class PaddingTest(parameterized.TestCase):

  @parameterized.parameters((1, 1), (1, 9), (2, 7), (3, 8), (5, 5), (5, 100),
                            (10, 11), (37, 64))
  def test_reflect_indices_match_numpy(self, size, n):
    a = np.arange(size)
    np.testing.assert_array_equal(
        a[tiling.reflect_indices(n, size)],
        np.pad(a, (0, n - size), mode='reflect'),
    )

  def test_pad_to_and_crop_round_trip(self):
    img = _image(13, 6)
    for arr in (img, img[None], img[..., 0]):
      padded = tiling.pad_to(arr, (16, 24))
      ay = 1 if arr.ndim == 4 else 0
      self.assertEqual(padded.shape[ay:ay + 2], (16, 24))
      pad = [(0, 0)] * arr.ndim
      pad[ay], pad[ay + 1] = (0, 3), (0, 18)  # 18 > 6: repeated reflection.
      np.testing.assert_array_equal(padded, np.pad(arr, pad, mode='reflect'))
      np.testing.assert_array_equal(tiling.crop_to(padded, (13, 6)), arr)
    self.assertIs(tiling.pad_to(img, (13, 6)), img)
    with self.assertRaisesRegex(ValueError, 'smaller'):
      tiling.pad_to(img, (12, 8))

  def test_pad_to_jax_matches_numpy_under_jit(self):
    img = _image(5, 7)[None]
    got = jax.jit(lambda x: tiling.pad_to(x, (8, 16)))(jnp.asarray(img))
    self.assertIsInstance(got, jax.Array)
    np.testing.assert_array_equal(np.asarray(got), tiling.pad_to(img, (8, 16)))

  def test_one_pixel_side_is_repeated(self):
    img = _image(1, 3)
    padded = tiling.pad_to(img, (8, 8))
    np.testing.assert_array_equal(padded[5], padded[0])
    np.testing.assert_array_equal(padded[0, :3], img[0])


class BucketTest(parameterized.TestCase):

  def test_bucket_values(self):
    sides = [1, 64, 65, 80, 81, 100, 129, 400, 600, 1080, 2160, 4096, 4097]
    self.assertEqual(
        [tiling.bucket_side(n) for n in sides],
        [64, 64, 80, 80, 96, 112, 160, 448, 640, 1280, 2560, 4096, 5120],
    )
    self.assertEqual(tiling.bucket_side(100, per_octave=1), 128)
    self.assertEqual(tiling.bucket_side(1000, per_octave=1), 1024)
    self.assertEqual(tiling.bucket_side(100, per_octave=0), 104)
    self.assertEqual(tiling.bucket_side(3, multiple=4, min_side=10), 12)
    self.assertEqual(tiling.bucket_shape(400, 600), (448, 640))

  def test_bucket_properties(self):
    n = np.arange(1, 5000)
    b = np.array([tiling.bucket_side(int(i)) for i in n])
    self.assertTrue(np.all(b >= n))
    self.assertTrue(np.all(b % 8 == 0))
    self.assertTrue(np.all(np.diff(b) >= 0))
    self.assertTrue(np.all(b[n > 64] <= n[n > 64] * 1.25 + 8))
    # Four buckets per octave: 64 and then 4 in each of (64, 128], ...,
    # (2048, 4096].
    self.assertLen(set(b[n <= 4096].tolist()), 1 + 4 * 6)

  def test_mixed_sizes_few_buckets(self):
    rng = np.random.default_rng(0)
    # LOL-like sizes and phone/camera sizes in both orientations.
    sizes = [(int(h), int(w)) for h, w in rng.integers(390, 620, (40, 2))]
    sizes += [(400, 600), (600, 400), (3024, 4032), (4032, 3024), (2160, 3840),
              (1080, 1920), (1079, 1919), (2000, 3000)]
    buckets = {tiling.bucket_shape(h, w) for h, w in sizes}
    self.assertLessEqual(len(buckets), 20)
    # Sides 390..620 fall in 4 buckets: at most 16 shapes for 40 images.
    small = {tiling.bucket_shape(h, w) for h, w in sizes[:40]}
    self.assertLessEqual(len(small), 16)
    self.assertTrue({s for b in small for s in b} <= {448, 512, 640})

  def test_with_padding_crops_back_and_uses_buckets(self):
    pred = _Recorder(_pointwise)
    padded = tiling.with_padding(pred)
    for h, w in ((3, 5), (37, 50), (100, 150), (101, 150)):
      x = _image(h, w)[None]
      out = np.asarray(padded(x))
      self.assertEqual(out.shape, x.shape)
      np.testing.assert_allclose(out, _pointwise(x), atol=1e-6)
    self.assertEqual(
        pred.shapes,
        [(1, 64, 64, 3), (1, 64, 64, 3), (1, 112, 160, 3), (1, 112, 160, 3)],
    )
    exact = _Recorder(_pointwise)
    tiling.with_padding(exact, bucket=False)(_image(37, 50)[None])
    self.assertEqual(exact.shapes, [(1, 40, 56, 3)])


class TilePlanTest(parameterized.TestCase):

  @parameterized.parameters((100, 32, 8), (32, 32, 8), (20, 32, 8),
                            (33, 32, 31), (1000, 96, 0), (517, 64, 16))
  def test_tile_starts_cover_flush_and_overlap(self, size, tile, overlap):
    starts = tiling.tile_starts(size, tile, overlap)
    length = min(tile, size)
    self.assertEqual(starts[0], 0)
    self.assertEqual(starts[-1] + length, size)  # Flush with the border.
    self.assertEqual(starts, sorted(set(starts)))
    for a, b in itertools.pairwise(starts):
      self.assertGreaterEqual(a + length - b, overlap)
      self.assertLessEqual(b - a, tile - overlap)

  def test_tile_starts_values(self):
    self.assertEqual(tiling.tile_starts(100, 32, 8), [0, 24, 48, 68])
    plan = tiling.plan_tiles(40, 100, 32, 8)
    self.assertEqual((plan.tile_h, plan.tile_w), (32, 32))
    self.assertEqual(plan.ys, (0, 8))
    self.assertEqual(plan.num_tiles, 8)
    self.assertEqual(plan.boxes[:5], [(0, 0), (0, 24), (0, 48), (0, 68),
                                      (8, 0)])

  @parameterized.parameters((10, 0, 0), (10, 8, 8), (10, 8, -1), (0, 8, 2))
  def test_bad_arguments(self, size, tile, overlap):
    with self.assertRaises(ValueError):
      tiling.tile_starts(size, tile, overlap)

  def test_blend_weights(self):
    w = tiling.blend_weights(32, 24, 8)
    self.assertEqual((w.shape, w.dtype), ((32, 24), np.float32))
    self.assertGreater(float(w.min()), 0.0)  # Strictly positive.
    self.assertEqual(float(w.max()), 1.0)
    np.testing.assert_array_equal(
        w, np.outer(tiling.window_1d(32, 8), tiling.window_1d(24, 8)))
    np.testing.assert_allclose(w[0, 12], 1 / 9)
    border = tiling.blend_weights(32, 24, 8, interior=(False,) * 4)
    np.testing.assert_array_equal(border, np.ones((32, 24)))

  @parameterized.parameters((8, 0, 'linear'), (8, 3, 'linear'),
                            (9, 2, 'linear'), (8, 2, 'uniform'))
  def test_neighbours_partition_of_unity(self, overlap, margin, window):
    # Two tiles of 40 overlapping by exactly `overlap`: weights sum to 1
    # (linear) or are positive (uniform) across the overlap, and the
    # `margin` pixels next to each interior edge are 0.
    kw = dict(margin=margin, window=window)
    a = tiling.window_1d(40, overlap, lo=False, hi=True, **kw)
    b = tiling.window_1d(40, overlap, lo=True, hi=False, **kw)
    total = a[40 - overlap:] + b[:overlap]
    if window == 'linear':
      np.testing.assert_allclose(total, 1.0, rtol=1e-6)
    self.assertGreater(float(total.min()), 0.0)
    np.testing.assert_array_equal(a[40 - margin:], 0.0)
    np.testing.assert_array_equal(b[:margin], 0.0)

  def test_bad_margin(self):
    with self.assertRaisesRegex(ValueError, 'margin'):
      tiling.blend_weights(32, 32, 8, margin=4)
    with self.assertRaisesRegex(ValueError, 'margin'):
      tiling.window_1d(32, 0, margin=1)

  def test_auto_tile(self):
    self.assertFalse(tiling.needs_tiling(1000, 1000, 1_000_000))
    self.assertTrue(tiling.needs_tiling(1000, 1001, 1_000_000))
    self.assertIsNone(tiling.auto_tile(1000, 1000, max_pixels=10**6,
                                       overlap=32))
    self.assertEqual(
        tiling.auto_tile(2160, 4096, max_pixels=10**6, overlap=32), 1000)
    self.assertEqual(
        tiling.auto_tile(2160, 4096, max_pixels=2**20, overlap=32), 1024)
    with self.assertRaisesRegex(ValueError, 'overlap'):
      tiling.auto_tile(2160, 4096, max_pixels=1000, overlap=32)


class RestoreTiledTest(parameterized.TestCase):

  @parameterized.parameters(
      # (h, w, tile, overlap, batch): non-divisible sizes, partial last batch,
      # an image narrower than the tile, one smaller than the tile.
      (77, 101, 32, 8, 1),
      (77, 101, 32, 12, 3),
      (61, 45, 48, 16, 4),
      (20, 150, 64, 16, 2),
      (13, 29, 64, 16, 1),
  )
  def test_pointwise_equals_untiled(self, h, w, tile, overlap, batch):
    img = _image(h, w)
    untiled = np.asarray(_pointwise(img[None]))[0]
    for margin in (0, None):
      pred = _Recorder(_pointwise)
      out = tiling.restore_tiled(pred, img, tile=tile, overlap=overlap,
                                 batch=batch, margin=margin)
      self.assertEqual((out.shape, out.dtype), (img.shape, np.float32))
      np.testing.assert_allclose(out, untiled, rtol=0, atol=1e-6)
      # One shape for every call: the predictor compiles once.
      self.assertLen(set(pred.shapes), 1)
      th = min(tile, tiling.round_up(h, 8))
      tw = min(tile, tiling.round_up(w, 8))
      self.assertEqual(pred.shapes[0], (batch, th, tw, 3))
      plan = tiling.plan_tiles(tiling.round_up(h, 8), tiling.round_up(w, 8),
                               tile, overlap)
      self.assertLen(pred.shapes, -(-plan.num_tiles // batch))

  @parameterized.parameters((77, 101, 32, 8), (64, 96, 32, 8),
                            (70, 45, 40, 16))
  def test_local_predictor_equals_untiled(self, h, w, tile, overlap):
    # The untiled reference pads the whole image to a multiple of 8, as the
    # model would. A 3x3 filter reads 1 pixel around each output pixel, so
    # with margin >= 1 every pixel is blended only from tiles where its
    # neighbourhood is real image (or the same padding as untiled): the
    # results agree up to float32 rounding of the weighted average (a few
    # ulps of values <= 1, hence 1e-6).
    img = _image(h, w)
    untiled = np.asarray(
        tiling.with_padding(jax.jit(_box3), bucket=False)(img[None]))[0]
    exact = tiling.restore_tiled(jax.jit(_box3), img, tile=tile,
                                 overlap=overlap, margin=1)
    np.testing.assert_allclose(exact, untiled, rtol=0, atol=1e-6)
    default = tiling.restore_tiled(jax.jit(_box3), img, tile=tile,
                                   overlap=overlap)  # margin overlap // 4.
    np.testing.assert_allclose(default, untiled, rtol=0, atol=1e-6)
    # margin=0: the wrong edge pixel of a tile keeps a small weight. Its
    # error is at most 5/9 (a corner sees 5 of 9 wrong neighbours in
    # [0, 1]) and its share of the blend at most 1 / (overlap + 1) per axis
    # (the ramp's first value against the neighbour's >= overlap /
    # (overlap + 1)), so |error| <= 2 * 5/9 / (overlap + 1); and it is not 0:
    # the margin is what makes the blend exact.
    ramp = tiling.restore_tiled(jax.jit(_box3), img, tile=tile,
                                overlap=overlap, margin=0)
    err = float(np.abs(ramp - untiled).max())
    self.assertLessEqual(err, 2 * 5 / 9 / (overlap + 1))
    self.assertGreater(err, 1e-3)

  def test_tiny_image_and_single_tile(self):
    for h, w in ((3, 5), (1, 1), (8, 8)):
      img = _image(h, w)
      pred = _Recorder(_box3)
      out = tiling.restore_tiled(pred, img, tile=64, overlap=16)
      untiled = tiling.with_padding(jax.jit(_box3), bucket=False)(img[None])
      np.testing.assert_allclose(out, np.asarray(untiled)[0], atol=1e-6)
      self.assertEqual(pred.shapes,
                       [(1, tiling.round_up(h, 8), tiling.round_up(w, 8), 3)])

  def test_valid_extent_of_each_tile(self):
    # 77x101 pads to 80x104: tiles of 32 start at rows 0, 24, 48 and
    # columns 0, 24, 48, 72; a border tile's valid part ends at the image.
    seen = []

    def predict(tiles, valid):
      seen.extend(map(tuple, np.asarray(valid)))
      return tiles

    out = tiling.restore_tiled(predict, _image(77, 101), tile=32, overlap=8,
                               batch=5, pass_valid=True)
    self.assertEqual(out.shape, (77, 101, 3))
    want = [(min(32, 77 - y), min(32, 101 - x))
            for y in (0, 24, 48) for x in (0, 24, 48, 72)]
    # 12 tiles in batches of 5: the last batch repeats its last tile.
    self.assertEqual(seen, want + [want[-1]] * 3)
    self.assertEqual(want[-1], (29, 29))
    got = []
    tiling.with_padding(lambda b, v: got.append(np.asarray(v)) or b,
                        bucket=False, pass_valid=True)(_image(13, 6)[None])
    np.testing.assert_array_equal(got[0], [[13, 6]])

  def test_output_channels_may_differ(self):
    img = _image(40, 50)
    out = tiling.restore_tiled(lambda x: x[..., :1] * 2, img, tile=16,
                               overlap=4)
    np.testing.assert_allclose(out, img[..., :1] * 2, atol=1e-6)

  @parameterized.parameters(1, 3, 4)
  def test_progress_after_each_batch(self, batch):
    # 77x101 pads to 80x104: 3 x 4 = 12 tiles of 32 with overlap 8.
    img = _image(77, 101)
    pred = _Recorder(_pointwise)
    calls = []  # (done, total, predict calls so far)
    out = tiling.restore_tiled(
        pred, img, tile=32, overlap=8, batch=batch,
        progress=lambda done, total: calls.append(
            (done, total, len(pred.shapes))))
    total = 12
    batches = -(-total // batch)
    want = [min((k + 1) * batch, total) for k in range(batches)]
    self.assertEqual([c[:2] for c in calls], [(d, total) for d in want])
    # A batch is reported once blended: its predict call and at most the
    # next one (dispatched ahead) have been made.
    for k, (_, _, made) in enumerate(calls):
      self.assertIn(made, (k + 1, min(k + 2, batches)))
    # The callback changes nothing.
    np.testing.assert_array_equal(
        out, tiling.restore_tiled(pred, img, tile=32, overlap=8,
                                  batch=batch))

  def test_bad_arguments(self):
    img = _image(40, 50)
    with self.assertRaisesRegex(ValueError, 'multiple of 8'):
      tiling.restore_tiled(_pointwise, img, tile=30, overlap=8)
    with self.assertRaisesRegex(ValueError, 'overlap < tile'):
      tiling.restore_tiled(_pointwise, img, tile=32, overlap=32)
    with self.assertRaisesRegex(ValueError, 'margin'):
      tiling.restore_tiled(_pointwise, img, tile=32, overlap=8, margin=4)
    with self.assertRaisesRegex(ValueError, 'batch'):
      tiling.restore_tiled(_pointwise, img, tile=32, overlap=8, batch=0)
    with self.assertRaisesRegex(ValueError, r'\(H, W, C\)'):
      tiling.restore_tiled(_pointwise, img[None], tile=32, overlap=8)
    with self.assertRaisesRegex(ValueError, 'predict returned shape'):
      tiling.restore_tiled(lambda x: x[:, :8], img, tile=32, overlap=8)

  def test_4k_image_memory_bound(self):
    # A 4096 x 2160 RGB float32 image (106 MB) through a jitted 3x3 filter in
    # 512-pixel tiles (45 tiles of 3 MB), in a fresh process so the numbers
    # are its own. The output buffer is unavoidable (1x the image);
    # everything else is tile sized: the input and output of the batch being
    # predicted and of the one being accumulated, the weighted copy, 2 MB of
    # normalisation rows. Bounds:
    # * numpy allocations (tracemalloc peak) <= image + 12 tiles (measured:
    #   image + ~5 tiles);
    # * peak RSS growth (VmHWM reset through /proc/self/clear_refs) <=
    #   image + 32 tiles (~1.9x the image; measured ~1.5x): on top of the
    #   numpy buffers come XLA's device buffers and what the allocators of
    #   XLA's threads keep after a tile is freed (tens of MB, independent of
    #   the image size). A padded full-size copy of the image, or keeping
    #   all tile outputs, would break either bound.
    script = textwrap.dedent("""
        import json, re, time, tracemalloc
        import jax, jax.numpy as jnp, numpy as np
        from restorect_jax.inference import tiling

        def status(key):
          with open('/proc/self/status') as f:
            return int(re.search(key + r':\\s+(\\d+)', f.read()).group(1))

        def box3(x):
          h, w = x.shape[1:3]
          p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
          return sum(p[:, i:i + h, j:j + w]
                     for i in range(3) for j in range(3)) / 9.0

        predict = jax.jit(box3)
        img = np.random.default_rng(0).random((2160, 4096, 3), np.float32)
        kw = dict(tile=512, overlap=32)
        predict(np.zeros((1, 512, 512, 3), np.float32)).block_until_ready()
        with open('/proc/self/clear_refs', 'w') as f:
          f.write('5')
        rss0 = status('VmRSS')
        t0 = time.perf_counter()
        out = tiling.restore_tiled(predict, img, **kw)
        seconds = time.perf_counter() - t0
        hwm = status('VmHWM')
        del out
        tracemalloc.start()
        out = tiling.restore_tiled(predict, img, **kw)
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # Untiled reference on a band across the first row of seams
        # (tiles start at rows 0, 480, ...): rows 440..560, zero padding
        # at the left/right borders like the jitted filter.
        band = np.pad(img[439:561], ((0, 0), (1, 1), (0, 0)))
        ref = sum(band[i:i + 120, j:j + 4096]
                  for i in range(3) for j in range(3)) / np.float32(9)
        print(json.dumps(dict(
            image_bytes=img.nbytes, rss0_kb=rss0, hwm_kb=hwm,
            traced_peak=traced_peak, seconds=seconds,
            band_err=float(np.abs(out[440:560] - ref).max()),
            plan=tiling.plan_tiles(2160, 4096, **kw).num_tiles)))
    """)
    env = dict(os.environ)
    env['PYTHONPATH'] = _REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True,
        env=env, cwd=_REPO, timeout=300, check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print('4K tiling memory:', r)
    image_bytes = r['image_bytes']
    tile_bytes = 512 * 512 * 3 * 4
    self.assertEqual(image_bytes, 2160 * 4096 * 3 * 4)
    self.assertEqual(r['plan'], 5 * 9)
    growth = (r['hwm_kb'] - r['rss0_kb']) * 1024
    self.assertLess(growth, image_bytes + 32 * tile_bytes)
    self.assertLess(r['traced_peak'], image_bytes + 12 * tile_bytes)
    self.assertGreaterEqual(r['traced_peak'], image_bytes)  # Sanity.
    self.assertLess(r['band_err'], 1e-6)


class EnsembleTest(parameterized.TestCase):

  def test_dihedral_inverse_and_reference_numbering(self):
    x = _image(4, 7)[None]
    seen = set()
    for k in range(8):
      y = tiling.dihedral(x, k)
      np.testing.assert_array_equal(
          y[0], input_pipeline.dihedral(x[0], k))
      np.testing.assert_array_equal(tiling.inverse_dihedral(y, k), x)
      seen.add(y.tobytes() + bytes(y.shape))
      self.assertEqual(y.shape[1:3], (7, 4) if (k // 2) % 2 else (4, 7))
    self.assertLen(seen, 8)

  @parameterized.parameters(False, True)
  def test_identity_returns_input_exactly(self, stack):
    x = np.stack([_image(5, 9, seed=s) for s in range(2)])
    calls = []

    def identity(b):
      calls.append(b.shape)
      return b

    out = tiling.ensemble_x8(identity, x, stack=stack)
    self.assertIsInstance(out, np.ndarray)
    np.testing.assert_array_equal(out, x)
    if stack:
      self.assertEqual(calls, [(8, 5, 9, 3), (8, 9, 5, 3)])
    else:
      self.assertEqual(sorted(set(calls)), [(2, 5, 9, 3), (2, 9, 5, 3)])
      self.assertLen(calls, 8)

  def test_square_stack_is_one_call(self):
    calls = []
    x = _image(6, 6)[None]
    out = tiling.ensemble_x8(lambda b: calls.append(b.shape) or b, x,
                             stack=True)
    self.assertEqual(calls, [(8, 6, 6, 3)])
    np.testing.assert_array_equal(out, x)

  def test_pointwise_predictor_unchanged(self):
    x = _image(7, 12)[None]
    out = tiling.ensemble_x8(jax.jit(_pointwise), x)
    np.testing.assert_allclose(out, np.asarray(_pointwise(x)), rtol=0,
                               atol=1e-6)

  def test_non_equivariant_predictor(self):
    # predict adds a ramp along the width of whatever it is given and
    # shifts rows down by one: the average must map every variant back.
    h, w = 5, 8
    x = _image(h, w, seed=3)[None]

    def predict(b):
      ramp = np.arange(b.shape[2], dtype=np.float32)[None, None, :, None]
      return np.roll(b, 1, axis=1) + ramp

    expected = np.mean(
        [input_pipeline.dihedral(
            predict(input_pipeline.dihedral(x[0], k)[None])[0],
            {0: 0, 1: 1, 2: 6, 3: 3, 4: 4, 5: 5, 6: 2, 7: 7}[k])
         for k in range(8)], axis=0)
    out = tiling.ensemble_x8(predict, x)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    self.assertGreater(float(np.abs(out - predict(x)).max()), 0.1)

  def test_jit_matches_numpy_with_padding_and_buckets(self):
    x = _image(37, 50, seed=1)[None]
    pred = _Recorder(_box3)
    padded = tiling.with_padding(pred, multiple=8)
    out_np = tiling.ensemble_x8(padded, x)
    self.assertEqual(out_np.shape, x.shape)
    self.assertEqual(set(pred.shapes), {(1, 64, 64, 3)})
    big = _image(100, 150, seed=2)[None]
    tiling.ensemble_x8(padded, big)
    self.assertEqual(set(pred.shapes[8:]), {(1, 112, 160, 3),
                                            (1, 160, 112, 3)})
    out_jit = jax.jit(lambda b: tiling.ensemble_x8(
        tiling.with_padding(_box3), b, stack=True))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out_jit), out_np, atol=1e-6)


if __name__ == '__main__':
  absltest.main()
