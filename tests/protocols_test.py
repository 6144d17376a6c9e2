"""Tests for restorect_jax.evaluation.protocols: each on hand-made pairs.

Expected numbers are worked out in the test from the definitions (constant
colour images make PSNR and SSIM closed-form: SSIM of two constant images is
the luminance term ``(2xy + C1) / (x^2 + y^2 + C1)``).
"""

import dataclasses
import math

import cv2
import numpy as np
from absl.testing import absltest, parameterized
from skimage.metrics import structural_similarity

from restorect_jax.evaluation import protocols

_C1 = (0.01 * 255) ** 2
_NAMES = ('standard', 'y_channel', 'gt_mean_retinexformer', 'gt_mean_cidnet',
          'gt_mean_kind', 'restorect_files', 'irflow')


def _const(rgb, size=16, dtype=np.uint8):
  img = np.zeros((size, size, 3), np.float64)
  img[...] = rgb
  return img.astype(dtype)


def _lum_ssim(x, y):
  """SSIM of two constant images with values x and y."""
  return (2 * x * y + _C1) / (x * x + y * y + _C1)


def _psnr(mse):
  return 10 * math.log10(255.0 ** 2 / mse)


def _textured(h=256, w=256):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  base = np.stack([127 + 100 * np.sin(xx / 9.0),
                   127 + 90 * np.cos(yy / 7.0),
                   127 + 80 * np.sin((xx + yy) / 11.0)], axis=-1)
  return np.clip(np.round(base), 0, 255).astype(np.uint8)


# A dark prediction with a colour cast, and its GT (both constant, 16x16).
# The quarter levels keep every rounding / truncation away from .5 and .0.
_GT = (200.0, 120.0, 40.0)
_PRED = (100.25, 60.25, 10.25)


class RegistryTest(absltest.TestCase):

  def test_names(self):
    self.assertEqual(set(protocols.PROTOCOLS), set(_NAMES))
    for name in _NAMES:
      p = protocols.get(name)
      self.assertEqual(p.name, name)
      self.assertTrue(p.description)
      self.assertNotIn('\n', p.description)
      self.assertIn('crop', p.description)
      self.assertIn(name, str(p))

  def test_unknown_name_lists_known(self):
    with self.assertRaises(ValueError) as cm:
      protocols.get('gt_mean')
    for name in _NAMES:
      self.assertIn(name, str(cm.exception))

  def test_frozen(self):
    p = protocols.get('standard')
    with self.assertRaises(dataclasses.FrozenInstanceError):
      p.name = 'other'

  def test_extra_metric_vocabulary(self):
    with self.assertRaises(ValueError):
      protocols.MetricRequest('psnr')
    with self.assertRaises(ValueError):
      protocols.MetricRequest('fid', source='other')
    rf = protocols.get('restorect_files')
    self.assertEqual(rf.extra_metric_names,
                     ('niqe', 'lpips_vgg', 'brisque', 'uciqe', 'uiqm', 'fid'))
    by_name = {r.name: r for r in rf.extra_metrics}
    self.assertTrue(by_name['lpips_vgg'].swap_rb)
    self.assertEqual(by_name['lpips_vgg'].crop_border, 0)
    self.assertEqual(by_name['niqe'].crop_border, 5)
    self.assertTrue(by_name['niqe'].swap_rb)
    self.assertEqual(by_name['fid'].source, 'fid')
    self.assertTrue(by_name['fid'].dataset_level)
    ir = protocols.get('irflow')
    self.assertEqual(ir.extra_metrics[0].name, 'lpips_alex')
    self.assertEqual(ir.extra_metrics[0].crop_border, 0)
    self.assertEqual(protocols.get('gt_mean_retinexformer').extra_metrics, ())


class HelperTest(absltest.TestCase):

  def test_gray_u8_fixed_point(self):
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255],
                    [100, 60, 10], [200, 120, 40], [185, 111, 18],
                    [138, 167, 72], [48, 17, 212]]], np.uint8)
    # OpenCV 4.x / 5.x: (9798 R + 19235 G + 3735 B + 16384) >> 15, e.g.
    # 100, 60, 10: 979800 + 1154100 + 37350 + 16384 = 2187634 -> 66.76 -> 66.
    # The last two sit at .499 of a level: 14-bit weights (OpenCV 3.x) give
    # 147 and 49 there, the 15-bit ones 148 and 48.
    np.testing.assert_array_equal(protocols.rgb_to_gray_u8(px)[0],
                                  [76, 150, 29, 255, 66, 135, 123, 148, 48])

  def test_ycbcr_rounded(self):
    img = np.array([[[200, 50, 10], [180, 50, 10]]], np.uint8)
    # 16 + (65.481*200 + 128.553*50 + 24.966*10)/255 = 93.54 -> 94;
    # 16 + (65.481*180 + ...)/255 = 88.41 -> 88.
    np.testing.assert_array_equal(protocols.ycbcr_y_rounded(img, False)[0],
                                  [94, 88])
    # Swapped: 16 + (24.966*200 + 128.553*50 + 65.481*10)/255 = 63.36 -> 63;
    # 16 + (24.966*180 + ...)/255 = 61.40 -> 61.
    np.testing.assert_array_equal(protocols.ycbcr_y_rounded(img, True)[0],
                                  [63, 61])

  def test_resize_bilinear_hand(self):
    row = np.array([[0.0, 3.0, 6.0]], np.float32)
    # 3 -> 2: x = (d + 0.5) * 1.5 - 0.5 = 0.25, 1.75.
    np.testing.assert_allclose(protocols.resize_bilinear(row, (1, 2)),
                               [[0.75, 5.25]], rtol=0, atol=1e-6)
    # 2 -> 4: x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    np.testing.assert_allclose(
        protocols.resize_bilinear(np.array([[0.0, 4.0]], np.float32),
                                  (1, 4)), [[0.0, 1.0, 3.0, 4.0]], atol=1e-6)
    # Exact 2x down: halfway taps = 2x2 means; channels kept.
    x = np.arange(32, dtype=np.float32).reshape(4, 4, 2)
    want = x.reshape(2, 2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(protocols.resize_bilinear(x, (2, 2)), want,
                               atol=1e-5)
    # Same size: identity, bit for bit.
    y = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(protocols.resize_bilinear(y, (5, 7)), y)

  def test_correct_mean_std_hand(self):
    p = np.zeros((4, 4, 3), np.float32)
    g = np.zeros((4, 4, 3), np.float32)
    p[:2], p[2:] = 50, 150  # every channel: mean 100, std 50
    g[:2, :, 0], g[2:, :, 0] = 100, 200  # mean 150, std 50
    g[:2, :, 1], g[2:, :, 1] = 0, 200  # mean 100, std 100
    g[:2, :, 2], g[2:, :, 2] = 50, 150  # equal statistics
    out = protocols.correct_mean_std(p, g, 0.1)
    self.assertEqual(out.dtype, np.uint8)
    # R: mean 100 -> 105, std 50 -> 50: x + 5.
    # G: mean 100, std 50 -> 55: (x - 100) * 1.1 + 100.
    # B: unchanged.
    np.testing.assert_array_equal(out[0, 0], [55, 45, 50])
    np.testing.assert_array_equal(out[3, 3], [155, 155, 150])
    # A constant channel (std 0) is left alone.
    flat = protocols.correct_mean_std(np.full((4, 4, 3), 80, np.float32), g)
    np.testing.assert_array_equal(flat, 80)
    # Reference quirk: max <= 1 means "[0, 1] data": float32, clipped to 1.
    tiny = np.where(p > 60, 1.0, 0.0).astype(np.float32)
    quirk = protocols.correct_mean_std(tiny, g)
    self.assertEqual(quirk.dtype, np.float32)
    self.assertLessEqual(quirk.max(), 1.0)

  def test_ssim_columns_is_skimage_multichannel_on_gray(self):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 13), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0,
                255).astype(np.uint8)
    want = structural_similarity(a, b, channel_axis=-1, data_range=255)
    self.assertAlmostEqual(protocols.ssim_skimage_columns(a, b), want,
                           places=12)
    # ... which is not skimage's 2-D SSIM of the same grey images.
    self.assertNotAlmostEqual(
        protocols.ssim_skimage_columns(a, b),
        structural_similarity(a, b, data_range=255), places=3)


class StandardAndYTest(absltest.TestCase):

  def test_standard_hand_value(self):
    gt = _const(_GT)
    pred = _const(_PRED, dtype=np.float32) / 255  # rounds to 100, 60, 10
    got = protocols.get('standard').score(pred, gt)
    mse = (100 ** 2 + 60 ** 2 + 30 ** 2) / 3
    self.assertAlmostEqual(got['psnr'], _psnr(mse), places=10)
    want_ssim = np.mean([_lum_ssim(100, 200), _lum_ssim(60, 120),
                         _lum_ssim(10, 40)])
    self.assertAlmostEqual(got['ssim'], want_ssim, places=10)

  def test_float_and_uint8_gt_agree(self):
    gt = _const(_GT)
    pred = _const(_PRED, dtype=np.float32) / 255
    for name in _NAMES:
      p = protocols.get(name)
      self.assertEqual(p.score(pred, gt), p.score(pred, gt / 255.0), name)

  def test_y_channel_standard_vs_swapped(self):
    gt = _const((200, 50, 10))
    pred = _const((180.25, 50.25, 10.25), dtype=np.float32) / 255
    got = protocols.get('y_channel').score(pred, gt)
    # Only R differs, by 20: standard Y moves by 65.481 * 20 / 255.
    self.assertAlmostEqual(got['psnr'],
                           20 * math.log10(255 / (65.481 * 20 / 255)),
                           places=9)
    yg = 16 + (65.481 * 200 + 128.553 * 50 + 24.966 * 10) / 255
    yp = 16 + (65.481 * 180 + 128.553 * 50 + 24.966 * 10) / 255
    self.assertAlmostEqual(got['ssim'], _lum_ssim(yp, yg), places=9)
    # The references' swapped Y weighs R by 24.966 only: a smaller error.
    swapped = protocols.make_restorect_files(size=None,
                                             correction_strength=None,
                                             crop_border=0)
    got_sw = swapped.score(pred, gt)
    self.assertAlmostEqual(got_sw['psnr'],
                           20 * math.log10(255 / (24.966 * 20 / 255)),
                           places=9)
    self.assertGreater(got_sw['psnr'] - got['psnr'], 8.0)


class GtMeanTest(absltest.TestCase):

  def _score(self, name):
    return protocols.get(name).score(_const(_PRED, dtype=np.float32) / 255,
                                     _const(_GT))

  def test_retinexformer_hand_value(self):
    p = np.array(_PRED) / 255
    g = np.array(_GT) / 255
    # cv2 BGR2GRAY on RGB: 0.114 R + 0.587 G + 0.299 B.
    w = np.array([0.114, 0.587, 0.299])
    k = (w @ g) / (w @ p)  # 105.2 / 49.86
    s = np.clip(p * k, 0, 1)  # (211.52, 127.12, 21.63) / 255
    mse = np.mean((g - s) ** 2)
    got = self._score('gt_mean_retinexformer')
    self.assertAlmostEqual(got['psnr'], 10 * math.log10(1 / mse), places=4)
    s8 = [212, 127, 22]  # img_as_ubyte rounds
    want_ssim = np.mean([_lum_ssim(a, b) for a, b in zip(s8, _GT, strict=True)])
    self.assertAlmostEqual(got['ssim'], want_ssim, places=10)

  def test_cidnet_hand_value(self):
    # Saved by truncation: 100, 60, 10. Integer greys 66 and 135.
    k = 135 / 66
    s = np.array([100, 60, 10]) * k  # float, not re-quantised
    mse = np.mean((s - np.array(_GT)) ** 2)
    got = self._score('gt_mean_cidnet')
    self.assertAlmostEqual(got['psnr'], _psnr(mse + 1e-8), places=4)
    want_ssim = np.mean([_lum_ssim(a, b) for a, b in zip(s, _GT, strict=True)])
    self.assertAlmostEqual(got['ssim'], want_ssim, places=10)

  def test_kind_llflow_hand_value(self):
    # k = mean grey of GT (0.114 R + 0.587 G + 0.299 B) / mean of all
    # output values = 105.2 / 56.9167; sr = trunc(pred * k) = 185, 111, 18.
    got = self._score('gt_mean_kind')
    mse = (15 ** 2 + 9 ** 2 + 22 ** 2) / 3
    self.assertAlmostEqual(got['psnr'], _psnr(mse), places=10)
    # SSIM on integer greys 123 (sr) and 135 (GT).
    self.assertAlmostEqual(got['ssim'], _lum_ssim(123, 135), places=10)

  def test_variants_differ_and_beat_standard(self):
    standard = self._score('standard')['psnr']
    values = {n: self._score(n)['psnr'] for n in
              ('gt_mean_retinexformer', 'gt_mean_cidnet', 'gt_mean_kind')}
    for name, v in values.items():
      self.assertGreater(v, standard + 10, name)
    vs = sorted(values.values())
    self.assertGreater(vs[1] - vs[0], 0.5)
    self.assertGreater(vs[2] - vs[1], 0.5)

  def test_uniformly_dark_prediction_is_recovered(self):
    rng = np.random.default_rng(5)
    grey = rng.integers(20, 230, (32, 40, 1)).astype(np.float64)
    gt = np.repeat(grey, 3, axis=-1).astype(np.uint8)
    pred = (gt / 255.0 * 0.5).astype(np.float32)
    standard = protocols.get('standard').score(pred, gt)['psnr']
    self.assertLess(standard, 15)
    for name in ('gt_mean_retinexformer', 'gt_mean_cidnet', 'gt_mean_kind'):
      self.assertGreater(protocols.get(name).score(pred, gt)['psnr'], 40,
                         name)

  def test_black_prediction_gives_nan(self):
    pred = np.zeros((16, 16, 3), np.float32)
    for name in ('gt_mean_retinexformer', 'gt_mean_cidnet', 'gt_mean_kind'):
      got = protocols.get(name).score(pred, _const(_GT))
      self.assertTrue(math.isnan(got['psnr']), name)

  def test_kind_uses_unclipped_mean(self):
    gt = _const(_GT)
    over = _const(_PRED, dtype=np.float32) / 255
    over[0, 0] = 5.0  # clipped to 1 before saving, but enters the mean
    clipped = np.clip(over, 0, 1)
    p = protocols.get('gt_mean_kind')
    self.assertNotAlmostEqual(p.score(over, gt)['psnr'],
                              p.score(clipped, gt)['psnr'], places=2)
    # Retinexformer (and the rest) clip first.
    for name in ('gt_mean_retinexformer', 'gt_mean_cidnet', 'standard'):
      r = protocols.get(name)
      self.assertEqual(r.score(over, gt), r.score(clipped, gt), name)

  def test_cidnet_prepared_is_unquantised(self):
    prep = protocols.get('gt_mean_cidnet').prepare(
        _const(_PRED, dtype=np.float32) / 255, _const(_GT))
    self.assertEqual(prep.pred.dtype, np.float64)
    np.testing.assert_allclose(prep.pred[0, 0], np.array([100, 60, 10])
                               * 135 / 66)
    np.testing.assert_array_equal(prep.pred_fid[0, 0], [100, 60, 10])


class RestorectFilesTest(absltest.TestCase):

  def test_identical_256_pair_is_perfect(self):
    gt = _textured()
    got = protocols.get('restorect_files').score(gt / 255.0, gt)
    self.assertEqual(got['psnr'], math.inf)
    self.assertAlmostEqual(got['ssim'], 1.0, places=12)

  def test_swapped_y_hand_value_256(self):
    # Constant 256^2 images: the resize is the identity and the correction
    # skips channels with zero std, so only crop + swapped Y remain.
    gt = _const((200, 50, 10), size=256)
    pred = _const((180.25, 50.25, 10.25), size=256, dtype=np.float32) / 255
    got = protocols.get('restorect_files').score(pred, gt)
    self.assertAlmostEqual(got['psnr'],
                           20 * math.log10(255 / (24.966 * 20 / 255)),
                           places=9)
    std_y = protocols.make_restorect_files(swapped_y=False).score(pred, gt)
    self.assertAlmostEqual(std_y['psnr'],
                           20 * math.log10(255 / (65.481 * 20 / 255)),
                           places=9)

  def test_crop_removes_border_error(self):
    gt = _textured()
    pred = gt / 255.0
    pred[:5], pred[-5:], pred[:, :5], pred[:, -5:] = 0, 0, 0, 0
    cropped = protocols.get('restorect_files').score(pred, gt)['psnr']
    uncropped = protocols.make_restorect_files(crop_border=0).score(
        pred, gt)['psnr']
    self.assertGreater(cropped, uncropped + 20)

  def test_resize_averages_noise(self):
    gt = np.kron(_textured(), np.ones((2, 2, 1), np.uint8))  # 512^2
    rng = np.random.default_rng(11)
    pred = np.clip(gt / 255 + rng.normal(0, 0.05, gt.shape), 0, 1)
    resized = protocols.get('restorect_files').score(pred, gt)
    full = protocols.make_restorect_files(size=None).score(pred, gt)
    # Exact 2x: 2x2 means cut the noise power by 4 (about +6 dB).
    self.assertGreater(resized['psnr'], full['psnr'] + 4)

  def test_correction_moves_dark_prediction_toward_gt(self):
    gt = _textured()
    dark = gt / 255.0 * 0.8
    with_corr = protocols.get('restorect_files').score(dark, gt)['psnr']
    without = protocols.make_restorect_files(
        correction_strength=None).score(dark, gt)['psnr']
    self.assertGreater(with_corr, without + 0.3)

  def test_truncation_lowers_psnr(self):
    gt = _textured()
    dark = gt / 255.0 * 0.8
    trunc = protocols.get('restorect_files').score(dark, gt)['psnr']
    rnd = protocols.make_restorect_files(quantize='round').score(
        dark, gt)['psnr']
    self.assertLess(trunc, rnd - 0.05)

  def test_fid_images_are_uncorrected(self):
    gt = _textured()
    dark = gt / 255.0 * 0.8
    prep = protocols.get('restorect_files').prepare(dark, gt)
    saved = np.round(dark * 255).astype(np.uint8)
    np.testing.assert_array_equal(prep.pred_fid, saved)
    self.assertFalse(np.array_equal(prep.pred, saved))
    np.testing.assert_array_equal(prep.gt_fid, gt)
    np.testing.assert_array_equal(prep.gt, gt)

  def test_fid_pred_resized_from_saved_png(self):
    gt = _textured()
    dark = np.round(gt * 0.8).astype(np.uint8)
    big = np.kron(dark, np.ones((2, 2, 1), np.uint8)).astype(np.float64)
    big[::2] += 1
    big[1::2, ::2] += 1  # 2x2 blocks (k+1, k+1, k+1, k): mean k + 0.75
    prep = protocols.get('restorect_files').prepare(big / 255, gt)
    self.assertEqual(prep.pred_fid.shape, (256, 256, 3))
    # cv2.resize on the uint8 PNG: halfway taps average each 2x2 block and
    # k + 0.75 rounds to k + 1 (the float load step would truncate to k).
    # No correction on the FID image, unlike the metric image.
    np.testing.assert_array_equal(prep.pred_fid, dark + 1)
    self.assertFalse(np.array_equal(prep.pred, dark + 1))

  def test_load_step_truncates(self):
    g = np.minimum(_textured(), 254)
    big = np.kron(g, np.ones((2, 2, 1), np.uint8))
    big[::2] += 1
    big[1::2, ::2] += 1  # 2x2 blocks (k+1, k+1, k+1, k): mean k + 0.75
    prep = protocols.get('restorect_files').prepare(big / 255.0, big)
    np.testing.assert_array_equal(prep.gt, g)  # truncated, not k + 1
    rounded = protocols.make_restorect_files(quantize='round').prepare(
        big / 255.0, big)
    np.testing.assert_array_equal(rounded.gt, g + 1)

  def test_load_step_is_the_authors_cv2_code(self):
    # evaluation.py's load_image_cropped on the GT and on the round-saved
    # prediction: (cv2.resize(x / 255, (256, 256), INTER_LINEAR) * 255)
    # truncated, with IPP on (x86-64 wheels' default) and off.
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 256, (400, 600, 3), np.uint8)
    pred = np.clip(gt / 255.0 + rng.normal(0, 0.05, gt.shape), 0, 1)
    saved = np.round(pred.astype(np.float32) * np.float32(255)).astype(
        np.uint8)
    old = cv2.ipp.useIPP()
    for flavour in ('ipp', 'generic'):
      if flavour == 'ipp' and not old:
        continue  # This OpenCV build has no IPP.
      cv2.ipp.setUseIPP(flavour == 'ipp')
      try:
        want = [(cv2.resize(img.astype(np.float32) / np.float32(255.0),
                            (256, 256), interpolation=cv2.INTER_LINEAR)
                 * np.float32(255.0)).astype(np.uint8)
                for img in (saved, gt)]
      finally:
        cv2.ipp.setUseIPP(old)
      prep = protocols.make_restorect_files(
          correction_strength=None, resize_flavour=flavour).prepare(pred, gt)
      np.testing.assert_array_equal(prep.pred, want[0])
      np.testing.assert_array_equal(prep.gt, want[1])

  def test_sizes_may_differ(self):
    gt = _textured()
    pred = np.kron(gt, np.ones((2, 2, 1), np.uint8)) / 255.0
    got = protocols.get('restorect_files').score(pred, gt)
    self.assertGreater(got['psnr'], 35)


class IrflowTest(absltest.TestCase):

  def test_hand_values(self):
    gt = _const((200, 50, 10))
    pred = _const((180.25, 50.25, 10.25), dtype=np.float32) / 255
    got = protocols.get('irflow').score(pred, gt)
    self.assertEqual(set(got), {'psnr', 'ssim', 'psnr_y', 'ssim_y',
                                'psnr_y_swapped', 'ssim_y_swapped'})
    self.assertAlmostEqual(got['psnr'], _psnr(20 ** 2 / 3), places=10)
    # Rounded Y: standard 94 vs 88, swapped 63 vs 61.
    self.assertAlmostEqual(got['psnr_y'], 20 * math.log10(255 / 6),
                           places=10)
    self.assertAlmostEqual(got['psnr_y_swapped'], 20 * math.log10(255 / 2),
                           places=10)
    self.assertAlmostEqual(got['ssim_y'], _lum_ssim(88, 94), places=10)
    self.assertAlmostEqual(got['ssim_y_swapped'], _lum_ssim(61, 63),
                           places=10)

  def test_one_pixel_crop(self):
    gt = _textured(24, 24)
    pred = gt / 255.0
    pred[0], pred[-1], pred[:, 0], pred[:, -1] = 1, 1, 1, 1
    got = protocols.get('irflow').score(pred, gt)
    for k in ('psnr', 'psnr_y', 'psnr_y_swapped'):
      self.assertEqual(got[k], math.inf, k)
    self.assertLess(protocols.get('standard').score(pred, gt)['psnr'], 20)
    # LPIPS is uncropped: the prepared images keep the border.
    prep = protocols.get('irflow').prepare(pred, gt)
    req = protocols.get('irflow').extra_metrics[0]
    p, g = prep.images_for(req)
    self.assertEqual(p.shape, gt.shape)
    self.assertFalse(np.array_equal(p, g))


class PairingTest(parameterized.TestCase):

  @parameterized.parameters(*_NAMES)
  def test_score_without_gt_raises(self, name):
    pred = _const(_PRED, dtype=np.float32) / 255
    with self.assertRaisesRegex(ValueError, 'score_unpaired'):
      protocols.get(name).score(pred, None)

  @parameterized.parameters(*_NAMES)
  def test_unpaired_reports_no_reference_only(self, name):
    p = protocols.get(name)
    res = p.score_unpaired(_const(_PRED, size=24, dtype=np.float32) / 255)
    self.assertEqual(res.metrics, {})
    self.assertIsNone(res.prepared.gt)
    self.assertEqual(res.requests, p.no_reference_metrics)
    for r in res.requests:
      self.assertFalse(r.needs_gt)
      pred, gt = res.prepared.images_for(r)
      self.assertIsNone(gt)
      self.assertEqual(pred.ndim, 3)

  def test_unpaired_restorect_files(self):
    res = protocols.get('restorect_files').score_unpaired(
        _textured(300, 200) / 255.0)
    self.assertEqual(tuple(r.name for r in res.requests),
                     ('niqe', 'brisque', 'uciqe', 'uiqm'))
    self.assertEqual(res.prepared.pred.shape, (256, 256, 3))
    lpips = protocols.MetricRequest('lpips_vgg')
    with self.assertRaisesRegex(ValueError, 'ground truth'):
      res.prepared.images_for(lpips)

  def test_shape_mismatch_raises(self):
    with self.assertRaisesRegex(ValueError, 'shapes differ'):
      protocols.get('standard').score(np.zeros((16, 16, 3), np.float32),
                                      np.zeros((16, 18, 3), np.uint8))
    with self.assertRaisesRegex(ValueError, 'RGB'):
      protocols.get('standard').score(np.zeros((16, 16), np.float32),
                                      np.zeros((16, 16), np.uint8))

  def test_images_for_crop_and_swap(self):
    pred = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    prep = protocols.Prepared(pred, pred + 1, pred + 2, pred + 3)
    req = protocols.MetricRequest('niqe', crop_border=2, swap_rb=True)
    p, g = prep.images_for(req)
    np.testing.assert_array_equal(p, pred[2:4, 2:4, ::-1])
    np.testing.assert_array_equal(g, (pred + 1)[2:4, 2:4, ::-1])
    p, g = prep.images_for(protocols.MetricRequest('fid', source='fid'))
    np.testing.assert_array_equal(p, pred + 2)
    np.testing.assert_array_equal(g, pred + 3)
    p8, g8, pf, gf = prep
    self.assertIs(pf, prep.pred_fid)
    self.assertIs(gf, prep.gt_fid)
    self.assertIs(p8, prep.pred)
    self.assertIs(g8, prep.gt)


if __name__ == '__main__':
  absltest.main()
