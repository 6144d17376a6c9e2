"""Tests for restorect_jax.ops: padding, dihedral, uint8, kernels, resamplers.

The OpenCV resamplers are compared with ``cv2.resize`` itself
(opencv-python-headless, the ``test`` extra) for exact equality; both of its
float32 ``INTER_LINEAR`` code paths are checked (Intel IPP on and off). The
MATLAB / PyTorch resamplers and the NIQE window are compared with the values
in golden/iqa_golden.json, recorded from BasicSR, piq and PyTorch by
golden/record_iqa.py.
"""

# pylint: disable=protected-access

import fractions
import json
import pathlib

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import torch
from absl.testing import absltest
from absl.testing import parameterized

from restorect_jax.ops import color
from restorect_jax.ops import dihedral
from restorect_jax.ops import filters
from restorect_jax.ops import padding
from restorect_jax.ops import quantize
from restorect_jax.ops import resample

_GOLDEN = json.loads(
    (pathlib.Path(__file__).parent / 'golden' / 'iqa_golden.json').read_text())
# Whether this OpenCV build resizes float32 images with Intel IPP by default
# (the x86-64 wheels do; ARM wheels have no IPP).
_CV2_HAS_IPP = cv2.ipp.useIPP()

# (in (H, W), out (H, W)) pairs covering what the protocols and the data
# pipeline resize: LOL's 400 x 600 and its transpose to 256^2, enlarging,
# odd sizes, exact 2x (OpenCV's area shortcut; 31 columns leave a SIMD
# tail), and a narrow image whose replicated-edge runs (24 columns each) are
# longer than IPP's 16-column blocks.
_BILINEAR_CASES = (
    ((400, 600), (256, 256)),
    ((600, 400), (256, 256)),
    ((256, 256), (600, 400)),
    ((37, 53), (256, 256)),
    ((99, 173), (333, 77)),
    ((512, 512), (256, 256)),
    ((100, 62), (50, 31)),
    ((17, 17), (256, 256)),
    ((133, 5), (347, 236)),
    ((2, 2), (7, 9)),
)


def _cv2_linear(x, size, ipp):
  """cv2.resize INTER_LINEAR with IPP on or off, channel axis kept."""
  old = cv2.ipp.useIPP()
  cv2.ipp.setUseIPP(ipp)
  try:
    out = cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
  finally:
    cv2.ipp.setUseIPP(old)
  return out.reshape(size + x.shape[2:])


def _round_f32(v: fractions.Fraction) -> np.float32:
  """The float32 nearest to the rational ``v``, ties to even (exact)."""
  r = np.float32(float(v))
  cands = [np.nextafter(r, np.float32(-np.inf)), r,
           np.nextafter(r, np.float32(np.inf))]
  dist = [abs(fractions.Fraction(float(c)) - v) for c in cands]
  best = min(dist)
  ties = [c for c, d in zip(cands, dist) if d == best]
  return min(ties, key=lambda c: int(np.array(c).view(np.int32)) & 1)


class PaddingTest(absltest.TestCase):

  def test_pad_to_multiple(self):
    x = np.random.default_rng(0).random((2, 13, 6, 3)).astype(np.float32)
    padded, hw = padding.pad_to_multiple(x, 8)
    self.assertEqual(hw, (13, 6))
    np.testing.assert_array_equal(
        padded, np.pad(x, ((0, 0), (0, 3), (0, 2), (0, 0)), mode='reflect'))
    same, _ = padding.pad_to_multiple(padded, 8)
    self.assertIs(same, padded)
    got, _ = jax.jit(lambda a: padding.pad_to_multiple(a, 8))(jnp.asarray(x))
    self.assertIsInstance(got, jax.Array)
    np.testing.assert_array_equal(np.asarray(got), padded)

  def test_refill_reflect_equals_crop_then_pad(self):
    # Traced sizes, every item its own (h, w), 1-pixel and repeated
    # reflections included; the garbage beyond (h, w) must not survive.
    rng = np.random.default_rng(1)
    x = rng.random((5, 16, 12, 2)).astype(np.float32)
    valid = np.int32([[16, 12], [13, 6], [1, 12], [5, 1], [9, 11]])
    got = np.asarray(jax.jit(padding.refill_reflect)(x, valid))
    for b, (h, w) in enumerate(valid):
      want = padding.pad_to(padding.crop_to(x[b], (h, w)), (16, 12))
      np.testing.assert_array_equal(got[b], want, err_msg=f'item {b}')

  def test_symmetric_repeats_the_edge(self):
    x = np.arange(6).reshape(2, 3)
    # cv2.BORDER_REFLECT: the last row / column is repeated, then mirrored.
    np.testing.assert_array_equal(
        padding.symmetric_pad_to_min(x, 5),
        [[0, 1, 2, 2, 1], [3, 4, 5, 5, 4], [3, 4, 5, 5, 4], [0, 1, 2, 2, 1],
         [0, 1, 2, 2, 1]])
    self.assertIs(padding.symmetric_pad_to_min(x, 2), x)

  def test_round_up_and_axes(self):
    self.assertEqual([padding.round_up(n, 8) for n in (1, 8, 9, 16)],
                     [8, 8, 16, 16])
    self.assertEqual(padding.spatial_axes(4), (1, 2))
    self.assertEqual(padding.spatial_axes(3), (0, 1))
    with self.assertRaises(ValueError):
      padding.round_up(3, 0)
    with self.assertRaises(ValueError):
      padding.spatial_axes(5)


class DihedralTest(absltest.TestCase):

  def test_numbering_and_inverse(self):
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(dihedral.dihedral(x, 1), x[::-1])
    np.testing.assert_array_equal(dihedral.dihedral(x, 2), np.rot90(x))
    np.testing.assert_array_equal(dihedral.dihedral(x, 7),
                                  np.rot90(x, 3)[::-1])
    for k in range(8):
      y = dihedral.dihedral(x, k)
      np.testing.assert_array_equal(dihedral.inverse_dihedral(y, k), x)
      # Batch axes (1, 2) give the same transform per image, in numpy and JAX.
      yb = dihedral.dihedral(jnp.asarray(x)[None], k, axes=(1, 2))
      np.testing.assert_array_equal(np.asarray(yb)[0], y)
    with self.assertRaisesRegex(ValueError, '0..7'):
      dihedral.dihedral(x, 8)


class QuantizeTest(absltest.TestCase):

  def test_quantize_255_modes(self):
    x = np.array([-3.0, 0.5, 1.5, 2.5, 254.5, 254.6, 300.0, np.nan])
    np.testing.assert_array_equal(quantize.quantize_255(x, 'round'),
                                  [0, 0, 2, 2, 254, 255, 255, 0])
    np.testing.assert_array_equal(quantize.quantize_255(x, 'truncate'),
                                  [0, 0, 1, 2, 254, 254, 255, 0])
    np.testing.assert_array_equal(quantize.quantize_255(x, 'half_up'),
                                  [0, 1, 2, 3, 255, 255, 255, 0])
    with self.assertRaises(ValueError):
      quantize.quantize_255(x, 'floor')

  def test_half_up_is_computed_in_float64(self):
    # 0.49999997 + 0.5 rounds to 1.0 in float32 but not in float64.
    x = np.array([0.49999997], np.float32)
    self.assertEqual(quantize.quantize_255(x, 'half_up')[0], 0)


class ColorTest(absltest.TestCase):

  def test_gray_u8_equals_cv2(self):
    img = np.random.default_rng(4).integers(0, 256, (61, 77, 3), np.uint8)
    for ipp in (False, True):
      old = cv2.ipp.useIPP()
      cv2.ipp.setUseIPP(ipp)
      try:
        want = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
      finally:
        cv2.ipp.setUseIPP(old)
      np.testing.assert_array_equal(color.gray_cv2_u8(img), want)

  def test_gray_f32_within_two_ulp_of_cv2(self):
    x = np.random.default_rng(5).random((61, 77, 3), dtype=np.float32)
    for swapped, code in ((False, cv2.COLOR_RGB2GRAY),
                          (True, cv2.COLOR_BGR2GRAY)):
      np.testing.assert_array_max_ulp(color.gray_cv2_f32(x, swapped),
                                      cv2.cvtColor(x, code), maxulp=2)


class FiltersTest(absltest.TestCase):

  def test_ssim_taps_match_opencv(self):
    np.testing.assert_allclose(filters.gaussian_taps(11, 1.5),
                               cv2.getGaussianKernel(11, 1.5)[:, 0],
                               rtol=0, atol=1e-16)

  def test_float32_taps_match_irflow_torch(self):
    # IR-Flow's SSIMLoss window: float32 taps normalised in float32.
    r = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-r ** 2 / (2 * 1.5 ** 2)).float()
    taps = filters.gaussian_taps(11, 1.5, np.float32)
    self.assertEqual(taps.dtype, np.float32)
    np.testing.assert_allclose(taps, (g / g.sum()).numpy(), rtol=0,
                               atol=3e-8)

  def test_window_matches_basicsr_niqe(self):
    np.testing.assert_allclose(filters.gaussian_window(7, 7.0 / 6.0),
                               _GOLDEN['niqe']['gaussian_window'], atol=1e-15)


class Fma32Test(absltest.TestCase):

  def test_matches_exact_rounding(self):
    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal(3000).astype(np.float32)
               * np.float32(2.0) ** rng.integers(-12, 12, 3000).astype(
                   np.float32) for _ in range(3))
    got = resample._fma32(x, y, z)
    for i in range(len(x)):
      v = (fractions.Fraction(float(x[i])) * fractions.Fraction(float(y[i]))
           + fractions.Fraction(float(z[i])))
      self.assertEqual(got[i], _round_f32(v), msg=(x[i], y[i], z[i]))

  def test_double_rounding_case(self):
    # x y = 2^-24 - 2^-70: in float64 the sum 1 + 2^-23 + x y rounds to the
    # float32 midpoint 1 + 2^-23 + 2^-24, which then rounds (ties to even)
    # up to 1 + 2^-22; the exact sum lies below the midpoint.
    x = np.array([2.0 ** -12 * (1 + 2.0 ** -23)], np.float32)
    y = np.array([2.0 ** -12 * (1 - 2.0 ** -23)], np.float32)
    z = np.array([1 + 2.0 ** -23], np.float32)
    naive = (x.astype(np.float64) * y + z).astype(np.float32)
    self.assertEqual(naive[0], np.float32(1 + 2.0 ** -22))
    self.assertEqual(resample._fma32(x, y, z)[0], np.float32(1 + 2.0 ** -23))


class BilinearTest(parameterized.TestCase):

  @parameterized.product(case=_BILINEAR_CASES, channels=(None, 1, 3, 4))
  def test_equals_cv2_without_ipp(self, case, channels):
    (h, w), size = case
    shape = (h, w) if channels is None else (h, w, channels)
    x = np.random.default_rng(h * w).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(
        resample.resize_bilinear(x, size, flavour='generic'),
        _cv2_linear(x, size, ipp=False))

  @parameterized.product(case=_BILINEAR_CASES, channels=(None, 1, 3, 4))
  def test_equals_cv2_with_ipp(self, case, channels):
    if not _CV2_HAS_IPP:
      self.skipTest('this OpenCV build has no IPP')
    (h, w), size = case
    shape = (h, w) if channels is None else (h, w, channels)
    x = np.random.default_rng(h + w).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(resample.resize_bilinear(x, size),
                                  _cv2_linear(x, size, ipp=True))

  def test_two_channels_use_the_generic_path(self):
    x = np.random.default_rng(1).random((37, 53, 2), dtype=np.float32)
    np.testing.assert_array_equal(resample.resize_bilinear(x, (256, 256)),
                                  _cv2_linear(x, (256, 256), ipp=False))

  def test_flavours_differ_and_same_size_is_a_copy(self):
    x = np.random.default_rng(2).random((400, 600, 3), dtype=np.float32)
    ipp = resample.resize_bilinear(x, (256, 256))
    generic = resample.resize_bilinear(x, (256, 256), flavour='generic')
    self.assertGreater(np.mean(ipp != generic), 0.05)
    same = resample.resize_bilinear(x, (400, 600))
    np.testing.assert_array_equal(same, x)
    self.assertIsNot(same, x)
    with self.assertRaises(ValueError):
      resample.resize_bilinear(x, (0, 5))
    with self.assertRaises(ValueError):
      resample.resize_bilinear(x, (5, 5), flavour='pil')


class BicubicTest(absltest.TestCase):

  def test_close_to_cv2_without_ipp(self):
    x = np.random.default_rng(3).random((37, 53, 3), dtype=np.float32)
    old = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
      ref = cv2.resize(x, (256, 200), interpolation=cv2.INTER_CUBIC)
    finally:
      cv2.ipp.setUseIPP(old)
    np.testing.assert_allclose(resample.resize_bicubic(x, 200, 256), ref,
                               rtol=0, atol=2.4e-7)


class MatlabAndTorchResampleTest(absltest.TestCase):

  def test_imresize_matches_basicsr_and_piq(self):
    g = _GOLDEN['imresize']
    x = np.array(g['input_26x34'])
    # BasicSR resizes in float32.
    np.testing.assert_allclose(
        resample.matlab_imresize(x, (13, 17), scale=0.5),
        g['basicsr_scale0.5'], atol=2e-6)
    np.testing.assert_allclose(
        resample.matlab_imresize(x, (52, 68), scale=2.0),
        g['basicsr_scale2'], atol=2e-6)
    np.testing.assert_allclose(resample.matlab_imresize(x[:25, :33], (12, 16)),
                               g['piq_25x33_to_12x16'], atol=1e-12)

  def test_imresize_rows_sum_to_one(self):
    m = resample.matlab_imresize_matrix(11, 4)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)

  def test_torch_bilinear_matches_torch(self):
    g = _GOLDEN['inception']
    x = np.array(g['bilinear_input'], np.float32).transpose(0, 2, 3, 1)
    for hw in ((12, 5), (3, 16)):
      mh = resample.torch_bilinear_matrix(7, hw[0])
      mw = resample.torch_bilinear_matrix(9, hw[1])
      got = np.einsum('oh,nhwc,pw->nopc', mh, x, mw)
      np.testing.assert_allclose(
          got.transpose(0, 3, 1, 2), g[f'bilinear_{hw[0]}x{hw[1]}'], atol=1e-6)

  def test_box_downsample_alignment(self):
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    # Output (0, 0) averages x[0:2, 0:2]; (1, 1) averages x[2:4, 2:4].
    np.testing.assert_allclose(resample.matlab_box_downsample(x, 2),
                               [[2.5, 4.5], [10.5, 12.5]])

  def test_area_linear(self):
    # Shrinking 6 -> 4: output i covers [1.5 i, 1.5 (i + 1)).
    np.testing.assert_allclose(
        resample.area_linear_matrix(6, 4) * 1.5,
        [[1, 0.5, 0, 0, 0, 0], [0, 0.5, 1, 0, 0, 0], [0, 0, 0, 1, 0.5, 0],
         [0, 0, 0, 0, 0.5, 1]])
    # Enlarging 2 -> 4: positions -0.25, 0.25, 0.75, 1.25, edges clamped.
    np.testing.assert_allclose(resample.area_linear_matrix(2, 4),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])


if __name__ == '__main__':
  absltest.main()
