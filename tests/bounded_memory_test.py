"""Bounded memory for any image size: RestoRect's priors window by window.

The student predictor computes the priors of an image above
``prior_max_pixels`` from windows with a halo covering the receptive field
of ``Dl`` and the condition encoders; the pooled features of the windows'
cores add up to the whole-image global average. These tests check that the
result equals the whole-image path up to float summation order, that images
within the bound take today's path bit for bit, and that no compiled
program of ``prepare`` sees more than one window, whatever the image size.
"""

from __future__ import annotations

from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.methods.restorect import predictor as rpred
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import init_variables

# Priors are O(1) (layer-normed conditions through a 5-step flow); the
# windowed sums differ from the whole-image mean by float32 rounding only.
# Measured: ~5e-7 on the priors and the restored image. A halo that misses
# the receptive field is off by > 1e-4 (test_halo_is_needed).
TOL = 1e-5


def _image(h, w, seed=0):
  return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


class _Spy:
  """Calls through to a jitted function, recording the array shapes."""

  def __init__(self, fn):
    self.fn = fn
    self.shapes = []

  def __call__(self, *args, **kwargs):
    self.shapes.append([tuple(np.shape(x))
                        for x in jax.tree.leaves(args)])
    return self.fn(*args, **kwargs)


class WindowPlanTest(parameterized.TestCase):

  @parameterized.parameters(
      # (height, width, max_pixels, halo)
      (200, 232, 96 * 96, 32),
      (4000, 6000, 1024 * 1024, 64),
      (6000, 4000, 1024 * 1024, 64),
      (3000, 96, 96 * 96, 32),     # thin: whole short side, long windows
      (96, 3000, 160 * 160, 32),
      (1024, 1032, 1024 * 1024, 64),
      (72, 72, 72 * 72, 32),       # one window
  )
  def test_cores_partition_and_keep_the_halo(self, h, w, max_pixels, halo):
    (wh, ww), boxes = rpred.prior_windows(h, w, max_pixels=max_pixels,
                                          halo=halo)
    self.assertLessEqual(wh * ww, max_pixels)
    self.assertEqual((wh % 8, ww % 8), (0, 0))
    cover = np.zeros((h, w), np.int32)
    for y, x, y0, y1, x0, x1 in boxes:
      self.assertTrue(0 <= y <= h - wh and 0 <= x <= w - ww)
      self.assertEqual((y % 8, x % 8), (0, 0))
      self.assertTrue(0 <= y0 < y1 <= wh and 0 <= x0 < x1 <= ww)
      # A window edge inside the image is >= halo from the core.
      if y > 0:
        self.assertGreaterEqual(y0, halo)
      if x > 0:
        self.assertGreaterEqual(x0, halo)
      if y + wh < h:
        self.assertGreaterEqual(wh - y1, halo)
      if x + ww < w:
        self.assertGreaterEqual(ww - x1, halo)
      cover[y + y0:y + y1, x + x0:x + x1] += 1
    np.testing.assert_array_equal(cover, 1)

  def test_halo_covers_the_receptive_field(self):
    # Dl: 4 convs (4 px); trunk: 2n + 4 convs on the 4x unshuffled grid.
    self.assertEqual(rpred.condition_halo(Model('interface', 'default')),
                     64)  # 4 + 4 * 14 = 60, to a multiple of 8
    self.assertEqual(rpred.condition_halo(Model('interface', 'demo')),
                     32)  # 4 + 4 * 6 = 28

  def test_too_small_budget_is_refused(self):
    with self.assertRaisesRegex(ValueError, r'prior_max_pixels >= 18496'):
      rpred.prior_windows(8, 8, max_pixels=135 ** 2, halo=64)
    with self.assertRaisesRegex(ValueError, r'prior_max_pixels >= 5184'):
      rpred.student_predictor({}, {}, model=Model('interface', 'demo'),
                              info={}, prior_max_pixels=64 * 64)


class WindowedPriorsTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = Model('interface', 'demo')
    lq = jnp.zeros((1, 16, 16, 3))
    rex = jnp.zeros((1, 16, 16, 4))
    noise = jnp.zeros((1, 256))
    cls.interface = init_variables(cls.model, 0, lq, rex, noise, noise, 1)
    cls.decom = init_variables(DecomNet(), 1, lq)
    cls.halo = rpred.condition_halo(cls.model)

  def _predictor(self, prior_max_pixels):
    return rpred.student_predictor(self.interface, self.decom,
                                   model=self.model, info={},
                                   prior_max_pixels=prior_max_pixels)

  def _max_diff(self, a, b):
    return max(float(jnp.abs(x - y).max()) for x, y in zip(a, b))

  @parameterized.parameters((197, 229), (200, 120))
  def test_windowed_equals_whole_image(self, h, w):
    whole = self._predictor(None)
    windowed = self._predictor(96 * 96)  # 96x96 windows: 32-px cores
    img = _image(h, w)
    spy = _Spy(rpred._window_features)
    with mock.patch.object(rpred, '_window_features', spy):
      z_win = windowed.prepare(img, name='a.png', seed=3)
    self.assertGreater(len(spy.shapes), 4)  # really windowed
    z_all = whole.prepare(img, name='a.png', seed=3)
    self.assertLessEqual(self._max_diff(z_win, z_all), TOL)
    out_win = windowed.predict(img, name='a.png', seed=3)
    out_all = whole.predict(img, name='a.png', seed=3)
    self.assertLessEqual(float(np.abs(out_win - out_all).max()), TOL)

  def test_halo_is_needed(self):
    # With a halo short of the receptive field the windows see the zero
    # padding of their interior edges: the test above would fail.
    img = _image(197, 229)
    z_all = self._predictor(None).prepare(img, name='a')
    with mock.patch.object(rpred, 'condition_halo', lambda model: 8):
      z_short = self._predictor(96 * 96).prepare(img, name='a')
    self.assertGreater(self._max_diff(z_short, z_all), 10 * TOL)

  def test_within_the_bound_is_todays_path_bit_for_bit(self):
    # 120x96 pads to itself: 11520 pixels, exactly the bound.
    img = _image(120, 96)
    today = self._predictor(None)
    bounded = self._predictor(120 * 96)
    spy = _Spy(rpred._window_features)
    with mock.patch.object(rpred, '_window_features', spy):
      z = bounded.prepare(img, name='b', seed=1)
      out = bounded.predict(img, name='b', seed=1)
    self.assertEqual(spy.shapes, [])
    for got, want in zip(z, today.prepare(img, name='b', seed=1)):
      np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out, today.predict(img, name='b', seed=1))
    # The default bound (1024 x 1024) keeps every image up to 1 MP there.
    self.assertEqual(rpred.PRIOR_MAX_PIXELS, 1024 * 1024)
    np.testing.assert_array_equal(
        rpred.student_predictor(self.interface, self.decom, model=self.model,
                                info={}).predict(img, name='b', seed=1), out)

  def test_compiled_programs_see_one_window_whatever_the_image(self):
    max_pixels = 96 * 96
    predictor = self._predictor(max_pixels)
    window_spy = _Spy(rpred._window_features)
    head_spy = _Spy(rpred._priors_from_features)

    def whole_image(*args, **kwargs):
      raise AssertionError('the whole-image prior program was called')

    with mock.patch.multiple(rpred, _window_features=window_spy,
                             _priors_from_features=head_spy,
                             _priors=whole_image):
      for h, w in ((200, 232), (312, 280)):
        before = window_spy.fn._cache_size()
        predictor.prepare(_image(h, w), name='c')
        if (h, w) == (312, 280):  # the second size compiles nothing new
          self.assertEqual(window_spy.fn._cache_size(), before)
    # Besides the params: one 96x96 window, its (4,) core and its weight;
    # the head gets (1, F) pooled features and (1, 256) noise.
    params = len(jax.tree.leaves({'interface': self.interface,
                                  'decom_low': self.decom}))
    self.assertLen(window_spy.shapes, 5 * 6 + 8 * 7)
    for call in window_spy.shapes:
      self.assertEqual(call[params:], [(1, 96, 96, 3), (4,), ()])
    self.assertLen(head_spy.shapes, 2)
    for call in head_spy.shapes:
      self.assertTrue(all(len(s) <= 2 and np.prod(s) <= 256
                          for s in call[params:]))

  def test_changed_encoder_names_are_an_error_not_wrong_priors(self):
    wrong = lambda model: {('img_condition', 'E.99'): ('img_condition',
                                                       'mlp.0')}
    with mock.patch.object(rpred, '_encoder_taps', wrong):
      rpred._window_features.clear_cache()
      with self.assertRaisesRegex(RuntimeError, 'update _encoder_taps'):
        self._predictor(96 * 96).prepare(_image(200, 232), name='d')
    rpred._window_features.clear_cache()


if __name__ == '__main__':
  absltest.main()
