"""Tests for restorect_jax.evaluation.metrics vs scikit-image and hand values.

scikit-image is the independent reference: its PSNR is the same formula, so
it must agree exactly; its SSIM filters with 'reflect' padding to a same-size
map, whose interior (5 pixels in from every side) is BasicSR's 'valid' map,
and whose reported mean is already taken over that interior.
"""

import math

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from skimage import color
from skimage import data
from skimage.metrics import peak_signal_noise_ratio
from skimage.metrics import structural_similarity

from restorect_jax.evaluation import metrics

_SSIM_KW = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                data_range=255)


def _sk_ssim(a, b, full=False):
  """skimage SSIM of two HWC (or HW) images on the 255 scale."""
  kw = dict(_SSIM_KW, channel_axis=-1) if np.ndim(a) == 3 else _SSIM_KW
  return structural_similarity(np.asarray(a, np.float64),
                               np.asarray(b, np.float64), full=full, **kw)


def _sk_psnr(a, b):
  return peak_signal_noise_ratio(np.asarray(a, np.float64),
                                 np.asarray(b, np.float64), data_range=255)


def _noisy(img, rng, amp):
  noise = rng.integers(-amp, amp + 1, img.shape)
  return np.clip(img.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _pairs():
  """Fixed, seeded (name, a, b) uint8 pairs: random, structured, photo."""
  rng = np.random.default_rng(1234)
  out = []
  a = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
  b = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
  out.append(('uniform_random', a, b))
  yy, xx = np.mgrid[0:48, 0:64].astype(np.float64)
  base = np.stack([
      127.5 + 120 * np.sin(xx / 5.0),
      255.0 * yy / 47.0,
      127.5 + 100 * np.cos((xx + yy) / 7.0)], axis=-1)
  s = np.clip(np.round(base), 0, 255).astype(np.uint8)
  out.append(('structured', s, _noisy(s, rng, 25)))
  photo = data.astronaut()[80:160, 140:236]  # 80x96 RGB crop: face, colours
  out.append(('astronaut', photo, _noisy(photo, rng, 12)))
  # A darker, blurrier "restoration" of the photo: not just additive noise.
  dim = (0.7 * photo.astype(np.float64) + 0.3 * np.roll(photo, 2, axis=1))
  out.append(('astronaut_dim', photo, np.round(dim * 0.85).astype(np.uint8)))
  return out


_PAIRS = _pairs()


class ToUint8Test(absltest.TestCase):

  def test_round_vs_truncate_near_half(self):
    eps = 1e-6
    x = np.array([0.5 / 255 + eps, 1.5 / 255 + eps, 0.5 / 255 - eps,
                  254.9 / 255, 254.4 / 255], np.float64)
    # x*255 = 0.50026, 1.50026, 0.49974, 254.9, 254.4
    np.testing.assert_array_equal(metrics.to_uint8(x, 'round'),
                                  [1, 2, 0, 255, 254])
    np.testing.assert_array_equal(metrics.to_uint8(x, 'truncate'),
                                  [0, 1, 0, 254, 254])

  def test_clipping_nan_and_dtype(self):
    x = np.array([-0.3, 0.0, 1.0, 1.7, np.nan], np.float32)
    for mode in ('round', 'truncate'):
      y = metrics.to_uint8(x, mode)
      self.assertEqual(y.dtype, np.uint8)
      np.testing.assert_array_equal(y, [0, 0, 255, 255, 0])
    u = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(metrics.to_uint8(u), u)
    with self.assertRaises(ValueError):
      metrics.to_uint8(x, 'floor')

  def test_matches_reference_expressions_float32(self):
    # The two references, written out: BasicSR tensor2img (float32 tensor,
    # clamp, *255, np.round) and the RestoRect script ((x*255).astype).
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 1.1, (64, 64, 3)).astype(np.float32)
    xc = np.clip(x, 0, 1)
    np.testing.assert_array_equal(metrics.to_uint8(x, 'round'),
                                  (xc * 255.0).round().astype(np.uint8))
    np.testing.assert_array_equal(metrics.to_uint8(x, 'truncate'),
                                  (xc * 255).astype(np.uint8))
    self.assertGreater(
        np.sum(metrics.to_uint8(x, 'round') != metrics.to_uint8(
            x, 'truncate')), 1000)


class RgbToYTest(absltest.TestCase):

  def test_hand_values(self):
    px = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255],
                   [0, 0, 0]], np.uint8)
    # Red: 16 + 65.481 = 81.481; green: 16 + 128.553 = 144.553;
    # blue: 16 + 24.966 = 40.966; white: 16 + 219 = 235; black: 16.
    np.testing.assert_allclose(metrics.rgb_to_y(px),
                               [81.481, 144.553, 40.966, 235.0, 16.0],
                               atol=1e-9)
    # Swapped (RGB fed into BasicSR's BGR function): R and B weights trade.
    np.testing.assert_allclose(metrics.rgb_to_y(px, swapped=True),
                               [40.966, 144.553, 81.481, 235.0, 16.0],
                               atol=1e-9)

  def test_matches_skimage_rgb2ycbcr(self):
    img = data.astronaut()[::4, ::4]
    np.testing.assert_allclose(metrics.rgb_to_y(img),
                               color.rgb2ycbcr(img)[..., 0], atol=1e-9)
    np.testing.assert_allclose(metrics.rgb_to_y(img, swapped=True),
                               color.rgb2ycbcr(img[..., ::-1])[..., 0],
                               atol=1e-9)
    # Float input on the 255 scale gives the same.
    np.testing.assert_allclose(metrics.rgb_to_y(img.astype(np.float32)),
                               metrics.rgb_to_y(img), atol=1e-9)


class PsnrTest(parameterized.TestCase):

  @parameterized.named_parameters(*[(n, a, b) for n, a, b in _PAIRS])
  def test_matches_skimage(self, a, b):
    self.assertAlmostEqual(metrics.psnr(a, b), _sk_psnr(a, b), delta=1e-4)
    c = 7
    self.assertAlmostEqual(metrics.psnr(a, b, crop_border=c),
                           _sk_psnr(a[c:-c, c:-c], b[c:-c, c:-c]), delta=1e-4)
    for swapped in (False, True):
      ya = color.rgb2ycbcr(a[..., ::-1] if swapped else a)[..., 0]
      yb = color.rgb2ycbcr(b[..., ::-1] if swapped else b)[..., 0]
      self.assertAlmostEqual(
          metrics.psnr(a, b, crop_border=5, y_channel=True,
                       swapped_y=swapped),
          _sk_psnr(ya[5:-5, 5:-5], yb[5:-5, 5:-5]), delta=1e-4)

  def test_constant_offset_hand_value(self):
    a = np.full((16, 20, 3), 100, np.uint8)
    b = a + 5
    # Every pixel differs by 5: MSE = 25, PSNR = 10 log10(255^2 / 25)
    # = 10 log10(2601) = 34.15140352 dB. The Y channel of a grey offset of 5
    # moves by 5 * 219 / 255 = 4.2941: MSE 18.4398, PSNR 35.5596 dB.
    self.assertAlmostEqual(metrics.psnr(a, b), 34.15140352195873, places=9)
    self.assertAlmostEqual(metrics.psnr(b, a, crop_border=3),
                           34.15140352195873, places=9)
    self.assertAlmostEqual(
        metrics.psnr(a, b, y_channel=True),
        10 * math.log10(255.0 ** 2 / (5 * 219 / 255) ** 2), places=9)

  def test_identical_is_inf(self):
    a = _PAIRS[2][1]
    self.assertEqual(metrics.psnr(a, a), math.inf)
    self.assertEqual(metrics.psnr(a, a.copy(), y_channel=True), math.inf)

  def test_crop_border_ignores_border_differences(self):
    a = _PAIRS[2][1]
    b = a.copy()
    b[:5] = 0
    b[:, -5:] = 255
    self.assertLess(metrics.psnr(a, b), 20.0)
    self.assertEqual(metrics.psnr(a, b, crop_border=5), math.inf)
    self.assertLess(metrics.psnr(a, b, crop_border=4), math.inf)

  def test_y_swapped_and_rgb_all_differ(self):
    # Colourful pair: the photo with independent per-channel noise.
    _, a, b = _PAIRS[2]
    rgb = metrics.psnr(a, b, crop_border=5)
    y = metrics.psnr(a, b, crop_border=5, y_channel=True)
    ys = metrics.psnr(a, b, crop_border=5, y_channel=True, swapped_y=True)
    self.assertGreater(abs(rgb - y), 0.5)
    self.assertGreater(abs(rgb - ys), 0.5)
    self.assertGreater(abs(y - ys), 1e-3)
    # Colour shift that Y and swapped Y weigh very differently: only blue.
    c = a.copy()
    c[..., 2] = np.clip(c[..., 2].astype(int) + 30, 0, 255)
    self.assertGreater(metrics.psnr(a, c, y_channel=True) -
                       metrics.psnr(a, c, y_channel=True, swapped_y=True),
                       5.0)

  def test_grayscale_and_shape_errors(self):
    a, b = _PAIRS[1][1][..., 0], _PAIRS[1][2][..., 0]
    self.assertAlmostEqual(metrics.psnr(a, b), _sk_psnr(a, b), delta=1e-4)
    # y_channel on a 1-channel image compares it as it is (as BasicSR).
    self.assertEqual(metrics.psnr(a, b, y_channel=True), metrics.psnr(a, b))
    with self.assertRaises(ValueError):
      metrics.psnr(a, b[:-1])
    with self.assertRaises(ValueError):
      metrics.psnr(a, b, crop_border=40)


class SsimTest(parameterized.TestCase):

  @parameterized.named_parameters(*[(n, a, b) for n, a, b in _PAIRS])
  def test_matches_skimage(self, a, b):
    self.assertAlmostEqual(metrics.ssim(a, b), _sk_ssim(a, b), delta=1e-6)
    # Per-pixel: skimage's full map, cropped by the window radius (5).
    _, full = _sk_ssim(a, b, full=True)
    for c in range(3):
      np.testing.assert_allclose(
          metrics.ssim_map(a[..., c], b[..., c]), full[5:-5, 5:-5, c],
          atol=1e-6, rtol=0)
    cb = 4
    self.assertAlmostEqual(metrics.ssim(a, b, crop_border=cb),
                           _sk_ssim(a[cb:-cb, cb:-cb], b[cb:-cb, cb:-cb]),
                           delta=1e-6)

  @parameterized.parameters(False, True)
  def test_y_channel_matches_skimage(self, swapped):
    for _, a, b in _PAIRS:
      ya = color.rgb2ycbcr(a[..., ::-1] if swapped else a)[..., 0]
      yb = color.rgb2ycbcr(b[..., ::-1] if swapped else b)[..., 0]
      self.assertAlmostEqual(
          metrics.ssim(a, b, crop_border=5, y_channel=True,
                       swapped_y=swapped),
          _sk_ssim(ya[5:-5, 5:-5], yb[5:-5, 5:-5]), delta=1e-6)

  def test_constant_images_hand_value(self):
    # Flat images have zero variance, so SSIM = (2 m1 m2 + C1) /
    # (m1^2 + m2^2 + C1) with C1 = 2.55^2 = 6.5025: for 100 vs 110,
    # 22006.5025 / 22106.5025 = 0.99547644409.
    a = np.full((20, 24, 3), 100, np.uint8)
    b = np.full((20, 24, 3), 110, np.uint8)
    self.assertAlmostEqual(metrics.ssim(a, b), 0.9954764440915066, places=12)

  def test_identical_is_one(self):
    for _, a, _ in _PAIRS:
      self.assertAlmostEqual(metrics.ssim(a, a), 1.0, places=12)
      self.assertAlmostEqual(metrics.ssim(a, a, y_channel=True), 1.0,
                             places=12)

  def test_crop_border_ignores_border_differences(self):
    a = _PAIRS[2][1]
    b = a.copy()
    b[-5:] = 0
    self.assertLess(metrics.ssim(a, b), 0.99)
    self.assertAlmostEqual(metrics.ssim(a, b, crop_border=5), 1.0, places=12)

  def test_y_swapped_and_rgb_all_differ(self):
    _, a, b = _PAIRS[3]
    vals = [metrics.ssim(a, b, crop_border=5),
            metrics.ssim(a, b, crop_border=5, y_channel=True),
            metrics.ssim(a, b, crop_border=5, y_channel=True, swapped_y=True)]
    for i in range(3):
      for j in range(i + 1, 3):
        self.assertGreater(abs(vals[i] - vals[j]), 1e-4, msg=str(vals))

  def test_too_small(self):
    a = np.zeros((10, 30), np.uint8)
    with self.assertRaises(ValueError):
      metrics.ssim(a, a)

  def test_psnr_ssim_helper(self):
    _, a, b = _PAIRS[2]
    r = metrics.psnr_ssim(a, b, crop_border=5, y_channel=True, swapped_y=True)
    self.assertEqual(r['psnr'], metrics.psnr(a, b, crop_border=5,
                                             y_channel=True, swapped_y=True))
    self.assertEqual(r['ssim'], metrics.ssim(a, b, crop_border=5,
                                             y_channel=True, swapped_y=True))


class MetricAveragerTest(absltest.TestCase):

  def test_mean_std_count(self):
    avg = metrics.MetricAverager()
    self.assertLen(avg, 0)
    vals = [(20.0, 0.5), (22.0, 0.7), (27.0, 0.9)]
    for p, s in vals:
      avg.update({'psnr': np.float32(p)}, ssim=s)
    avg.update(lpips=0.1)
    self.assertEqual(avg.names, ['psnr', 'ssim', 'lpips'])
    self.assertLen(avg, 3)
    self.assertEqual(avg.count('psnr'), 3)
    self.assertEqual(avg.count('lpips'), 1)
    self.assertEqual(avg.count('niqe'), 0)
    # psnr: mean 23, population std sqrt((9 + 1 + 16) / 3) = 2.94392.
    self.assertAlmostEqual(avg.mean()['psnr'], 23.0)
    self.assertAlmostEqual(avg.std()['psnr'], math.sqrt(26 / 3))
    self.assertAlmostEqual(avg.mean()['ssim'], 0.7)
    s = avg.summary()
    self.assertEqual(s['psnr_n'], 3.0)
    self.assertAlmostEqual(s['ssim_std'], np.std([0.5, 0.7, 0.9]))
    np.testing.assert_array_equal(avg.values('psnr'), [20.0, 22.0, 27.0])
    avg.reset()
    self.assertEqual(avg.mean(), {})


if __name__ == '__main__':
  absltest.main()
