"""Named evaluation protocols: which pixels are compared, and how.

The same restored image gets PSNR values several dB apart depending on the
resize, the brightness correction, the channel / luma, the border crop and
the uint8 quantisation a paper used (``spec/peers.md`` §3b, §4 items 2-3).
Every number this project prints therefore names its protocol, and every
protocol carries a one-line ``description`` that is printed with it.

Registry (:data:`PROTOCOLS`, :func:`get`):

* ``standard``: full resolution, RGB, crop 0, clip + round to uint8, BasicSR
  PSNR / SSIM.
* ``y_channel``: as ``standard`` on the standard BT.601 Y (R weight 65.481).
* ``gt_mean_retinexformer``, ``gt_mean_cidnet``, ``gt_mean_kind``: the
  GT-mean brightness matching exactly as each peer's test script computes it
  (including that peer's own PSNR / SSIM code), see the factory docstrings.
* ``restorect_files``: the RestoRect authors' ``evals/evaluation.py``, the
  script that wrote every number in ``spec/restorect.md`` §6.1.
* ``irflow``: IR-Flow's ``test.py`` (crop 1, rounding, RGB plus two Y flavours
  under distinct names, LPIPS-alex uncropped).

Inputs. ``pred`` is the model's raw float output in HWC RGB order, nominally
in [0, 1] and **not** clipped: each protocol clips where its reference clips
(all of them before quantising; ``gt_mean_kind`` takes its brightness ratio
from the unclipped output, as LLFlow does). ``pred`` is cast to float32, the
dtype of the references' model outputs; a uint8 ``pred`` is taken as an
already saved image. ``gt`` is the ground truth as uint8 or as float ``k/255``
values (an image file divided by 255); it is rounded back to uint8 exactly.

Outputs. :meth:`Protocol.score` returns the paired metrics (``psnr``,
``ssim`` and, for ``irflow``, the Y variants). :meth:`Protocol.prepare`
returns the images as the protocol's reference hands them to its other
metrics (:class:`Prepared`), and :attr:`Protocol.extra_metrics` names those
metrics (:class:`MetricRequest`: LPIPS, NIQE, BRISQUE, UCIQE, UIQM, FID) with
the crop / channel order each is fed with; the evaluate CLI computes them
with :meth:`Prepared.images_for`. This module computes none of them.

Unpaired sets (no GT): :meth:`Protocol.score_unpaired` / ``evaluate(pred,
None)`` report no paired metric and only the no-reference extra metrics;
``score(pred, None)`` raises. An image is never scored against its own input
(the RestoRect files did that for DICM, LIME, MEF, NPE, VV and fundus,
``spec/restorect.md`` §6.1 ``*`` rows, §7 item 10).

Float arithmetic follows the references (float32 where they use it), but an
operation order or a NumPy scalar-promotion rule may differ by one ulp, which
can flip an occasional value that is truncated or rounded right at an integer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from restorect_jax.evaluation import metrics
from restorect_jax.ops import color, resample
from restorect_jax.ops import quantize as quantize_lib

# Extra-metric vocabulary shared with the evaluate CLI.
KNOWN_EXTRA_METRICS = ('lpips_alex', 'lpips_vgg', 'niqe', 'brisque', 'uciqe',
                       'uiqm', 'fid')
# Extra metrics that compare with the GT (dropped for unpaired sets).
PAIRED_EXTRA_METRICS = frozenset({'lpips_alex', 'lpips_vgg', 'fid'})
# Extra metrics computed once over a whole data set, not per image.
DATASET_LEVEL_METRICS = frozenset({'fid'})

# SSIM constants on a data range of 255 (all references use these).
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2

_SOURCES = ('metric', 'fid')


@dataclasses.dataclass(frozen=True)
class MetricRequest:
  """One extra metric a protocol reports, and how its reference feeds it.

  Attributes:
    name: One of :data:`KNOWN_EXTRA_METRICS`.
    source: ``'metric'``: the images the paired metrics use
      (:attr:`Prepared.pred` / :attr:`Prepared.gt`, e.g. mean/std-corrected
      for ``restorect_files``); ``'fid'``: :attr:`Prepared.pred_fid` /
      :attr:`Prepared.gt_fid` (uncorrected for ``restorect_files``).
    crop_border: Pixels removed from every side before the metric.
    swap_rb: Feed the images with the channel order reversed (BGR). The
      references that passed RGB arrays to BGR-expecting code (RestoRect's
      LPIPS through ``img2tensor(bgr2rgb=True)``, BasicSR NIQE's Y) are
      reproduced by a metric that expects RGB getting the reversed image.
    note: What the reference did, for the printed report.
  """

  name: str
  source: Literal['metric', 'fid'] = 'metric'
  crop_border: int = 0
  swap_rb: bool = False
  note: str = ''

  def __post_init__(self) -> None:
    if self.name not in KNOWN_EXTRA_METRICS:
      raise ValueError(f'Unknown extra metric {self.name!r}; known: '
                       f'{", ".join(KNOWN_EXTRA_METRICS)}.')
    if self.source not in _SOURCES:
      raise ValueError(f'source must be one of {_SOURCES}, got '
                       f'{self.source!r}.')
    if self.crop_border < 0:
      raise ValueError(f'crop_border must be >= 0, got {self.crop_border}.')

  @property
  def needs_gt(self) -> bool:
    """Whether the metric compares with the ground truth."""
    return self.name in PAIRED_EXTRA_METRICS

  @property
  def dataset_level(self) -> bool:
    """Whether the metric is one number per data set (FID)."""
    return self.name in DATASET_LEVEL_METRICS


@dataclasses.dataclass(frozen=True)
class Prepared:
  """Images as a protocol's reference passes them to its metrics.

  All arrays are HWC RGB on the [0, 255] scale and uncropped. They are uint8
  wherever the reference quantised; ``gt_mean_cidnet`` scores (and runs
  LPIPS on) the unquantised brightness-scaled prediction, so its ``pred`` is
  float64. (One reference quirk: ``restorect_files`` returns a float32
  ``pred`` on the [0, 1] scale for an almost black image, see
  :func:`correct_mean_std`.) Unpacks as ``pred, gt, pred_fid, gt_fid``.

  Attributes:
    pred: Prediction as the paired metrics (and ``source='metric'`` extra
      metrics) see it.
    gt: Ground truth on the same grid, or None for an unpaired image.
    pred_fid: Prediction for FID (``restorect_files``: uncorrected 256²).
    gt_fid: Ground truth for FID, or None.
  """

  pred: np.ndarray
  gt: np.ndarray | None
  pred_fid: np.ndarray
  gt_fid: np.ndarray | None

  def __iter__(self):
    return iter((self.pred, self.gt, self.pred_fid, self.gt_fid))

  def images_for(
      self, request: MetricRequest) -> tuple[np.ndarray, np.ndarray | None]:
    """``(pred, gt)`` cropped and channel-ordered as ``request`` says.

    Args:
      request: One of the protocol's :attr:`Protocol.extra_metrics`.

    Returns:
      The prediction and the GT (None when unpaired) for that metric.

    Raises:
      ValueError: The metric needs a GT and this image has none.
    """
    if request.source == 'fid':
      pred, gt = self.pred_fid, self.gt_fid
    else:
      pred, gt = self.pred, self.gt
    if request.needs_gt and gt is None:
      raise ValueError(f'{request.name} needs a ground truth; this image is '
                       'unpaired.')

    def fix(x):
      if x is None:
        return None
      c = request.crop_border
      if c:
        x = x[c:-c, c:-c]
        if x.shape[0] == 0 or x.shape[1] == 0:
          raise ValueError('crop_border leaves an empty image.')
      if request.swap_rb:
        x = x[..., ::-1]
      return np.ascontiguousarray(x)

    return fix(pred), fix(gt)


@dataclasses.dataclass(frozen=True)
class Result:
  """What :meth:`Protocol.evaluate` returns for one image.

  Attributes:
    metrics: Paired metrics (``{}`` for an unpaired image).
    prepared: Images for the extra metrics.
    requests: The extra metrics that apply to this image (no-reference ones
      only when unpaired).
  """

  metrics: dict[str, float]
  prepared: Prepared
  requests: tuple[MetricRequest, ...]


_EvalFn = Callable[[np.ndarray, np.ndarray | None],
                   tuple[dict[str, float], Prepared]]


@dataclasses.dataclass(frozen=True)
class Protocol:
  """A named evaluation protocol.

  Attributes:
    name: Registry key.
    description: One line saying what resize, correction, channel / luma,
      crop and quantisation are used; print it with every result.
    reference: The code this protocol reproduces.
    paired_metrics: Keys :meth:`score` returns.
    extra_metrics: Further metrics the reference reports, for the CLI.
  """

  name: str
  description: str
  reference: str
  paired_metrics: tuple[str, ...]
  extra_metrics: tuple[MetricRequest, ...]
  _evaluate: _EvalFn = dataclasses.field(repr=False, compare=False)

  def __str__(self) -> str:
    return f'{self.name}: {self.description}'

  @property
  def extra_metric_names(self) -> tuple[str, ...]:
    """Names of :attr:`extra_metrics`."""
    return tuple(r.name for r in self.extra_metrics)

  @property
  def no_reference_metrics(self) -> tuple[MetricRequest, ...]:
    """The extra metrics that need no GT (what an unpaired set reports)."""
    return tuple(r for r in self.extra_metrics if not r.needs_gt)

  def evaluate(self, pred: np.ndarray, gt: np.ndarray | None) -> Result:
    """Paired metrics, prepared images and applicable extra metrics.

    Args:
      pred: Raw float HWC RGB output (see the module docstring).
      gt: Ground truth, or None for an unpaired image (then no paired metric
        is computed and only no-reference extra metrics apply).

    Returns:
      A :class:`Result`.
    """
    pred = _check_hwc3(pred, 'pred')
    if gt is not None:
      gt = _check_hwc3(gt, 'gt')
    values, prepared = self._evaluate(pred, gt)
    requests = (self.extra_metrics if gt is not None
                else self.no_reference_metrics)
    return Result(values, prepared, requests)

  def score(self, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The paired metrics (:attr:`paired_metrics`) of one image pair.

    Args:
      pred: Raw float HWC RGB output (see the module docstring).
      gt: Ground truth (uint8 or float k/255), same size unless the protocol
        resizes both (``restorect_files``).

    Returns:
      ``{metric: value}``.

    Raises:
      ValueError: ``gt`` is None. Use :meth:`score_unpaired`; scoring an
        output against its own input is not a paired metric.
    """
    if gt is None:
      raise ValueError(
          f'Protocol {self.name!r}: score() needs a ground truth. For a set '
          'without GT use score_unpaired(pred), which reports only '
          'no-reference metrics; never pass the degraded input as GT.')
    return self.evaluate(pred, gt).metrics

  def prepare(self, pred: np.ndarray,
              gt: np.ndarray | None) -> Prepared:
    """The images this protocol feeds to its extra metrics."""
    return self.evaluate(pred, gt).prepared

  def score_unpaired(self, pred: np.ndarray) -> Result:
    """No paired metric (``metrics == {}``); only no-reference requests."""
    return self.evaluate(pred, None)


# ---------------------------------------------------------------------------
# Shared helpers.
# ---------------------------------------------------------------------------


def _check_hwc3(x: np.ndarray, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f'{name} must be an (H, W, 3) RGB image, got shape '
                     f'{x.shape}.')
  if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
    raise ValueError(f'{name} must be uint8 or float, got {x.dtype}.')
  return x


def _pred_f32(pred: np.ndarray) -> np.ndarray:
  """float32 prediction; a uint8 one (a saved image) is divided by 255."""
  if pred.dtype == np.uint8:
    return pred.astype(np.float32) / np.float32(255.0)
  return pred.astype(np.float32)


def _gt_u8(gt: np.ndarray) -> np.ndarray:
  return quantize_lib.to_uint8(gt, 'round')


def _truncate(x: np.ndarray) -> np.ndarray:
  """Clip to [0, 1], ``x * 255`` truncated (torchvision ``ToPILImage``)."""
  return quantize_lib.to_uint8(x, 'truncate')


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
  if a.shape != b.shape:
    raise ValueError(f'pred and gt shapes differ: {a.shape} vs {b.shape}.')


def _gray_bgr_on_rgb(x: np.ndarray) -> np.ndarray:
  """cv2 float ``BGR2GRAY`` on an RGB array: 0.114 R + 0.587 G + 0.299 B."""
  return color.gray_cv2_f32(x, swapped=True)


# The reference conversions, kept under the names the protocols use.
rgb_to_gray_u8 = color.gray_cv2_u8
ycbcr_y_rounded = color.y_bt601_rounded_u8
resize_bilinear = resample.resize_bilinear


def correct_mean_std(pred: np.ndarray, gt: np.ndarray,
                     strength: float = 0.1,
                     quantize: Literal['truncate', 'round'] = 'truncate'
                     ) -> np.ndarray:
  """RestoRect's ``correct_mean_var``: move per-channel mean/std toward GT.

  In float32, per channel ``c``: ``m' = m + s (m_gt - m)``, ``d' = d +
  s (d_gt - d)`` (population std), ``x <- (x - m + m' - m') * d'/d + m'``;
  a channel whose std (pred or GT) is below 1e-8 is left alone. The result
  is clipped to [0, 255] and truncated to uint8. The target mean/std are
  formed in float64 and applied as float32 (NumPy 1.x scalar promotion).

  Reference quirk, kept: if ``pred.max() <= 1`` (an almost black image on
  the 255 scale) the reference takes the image for [0, 1] data, clips to
  [0, 1] and returns float32 without quantising.

  Args:
    pred: ``(H, W, C)`` prediction on the [0, 255] scale.
    gt: Ground truth of the same shape on the [0, 255] scale.
    strength: 0 = no correction, 1 = full moment matching.
    quantize: ``'truncate'`` (the reference) or ``'round'`` (ablation).

  Returns:
    The corrected uint8 image (float32 in the quirk case).
  """
  out = np.asarray(pred).astype(np.float32)
  g = np.asarray(gt).astype(np.float32)
  if out.shape != g.shape:
    raise ValueError(f'Shapes differ: {out.shape} vs {g.shape}.')
  is_normalized = out.max() <= 1.0
  for j in range(out.shape[2]):
    mean_p = np.mean(out[:, :, j])
    std_p = np.std(out[:, :, j])
    mean_g = np.mean(g[:, :, j])
    std_g = np.std(g[:, :, j])
    if std_p < 1e-8 or std_g < 1e-8:
      continue
    t_mean = float(mean_p) + strength * (float(mean_g) - float(mean_p))
    t_std = float(std_p) + strength * (float(std_g) - float(std_p))
    t_mean32 = np.float32(t_mean)
    out[:, :, j] = out[:, :, j] - mean_p + t_mean32
    out[:, :, j] = ((out[:, :, j] - t_mean32) * np.float32(t_std / float(std_p))
                    + t_mean32)
  if quantize not in ('truncate', 'round'):
    raise ValueError(f"quantize must be 'truncate' or 'round', got "
                     f'{quantize!r}.')
  if is_normalized:
    return np.clip(out, 0, 1).astype(np.float32)
  return quantize_lib.quantize_255(out, quantize)


def _matlab_ssim(a: np.ndarray, b: np.ndarray) -> float:
  """MATLAB-style SSIM (11x11 Gaussian, valid), per channel then averaged.

  Retinexformer's and CIDNet's ``calculate_ssim`` and BasicSR's are the same
  computation; inputs on the [0, 255] scale, any float or uint8 dtype.
  """
  return metrics.ssim(np.asarray(a, np.float64), np.asarray(b, np.float64))


def ssim_skimage_columns(a: np.ndarray, b: np.ndarray) -> float:
  """skimage SSIM of two grey images passed with ``multichannel=True``.

  LLFlow's ``Measure.ssim`` calls ``structural_similarity(gray_a, gray_b,
  multichannel=True)`` on 2-D images, so skimage treats every image column
  as a channel: a 1-D SSIM down each column (7-tap uniform window, sample
  covariance ``7/6``, data range 255 from uint8, border of 3 cropped), then
  the mean over columns.

  Args:
    a: ``(H, W)`` grey image, H >= 7.
    b: Image of the same shape.

  Returns:
    The mean SSIM.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f'Expected two equal 2-D images, got {a.shape}, '
                     f'{b.shape}.')
  win = 7
  n = a.shape[0] - win + 1
  if n <= 0:
    raise ValueError(f'Need at least {win} rows, got {a.shape[0]}.')

  def box(x):
    return sum(x[i:i + n] for i in range(win)) / win

  ux, uy = box(a), box(b)
  cov_norm = win / (win - 1)
  vx = cov_norm * (box(a * a) - ux * ux)
  vy = cov_norm * (box(b * b) - uy * uy)
  vxy = cov_norm * (box(a * b) - ux * uy)
  s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)
       / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2)))
  return float(s.mean())


def _safe_ratio(num: float, den: float) -> float:
  """num / den; NaN when den is 0 (the references would produce NaN/inf)."""
  if den == 0:
    return math.nan
  return num / den


# ---------------------------------------------------------------------------
# standard and y_channel.
# ---------------------------------------------------------------------------


def _rounded_pair(pred: np.ndarray, gt: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
  """The prediction rounded to uint8 (``tensor2img``) and the uint8 GT."""
  p8 = quantize_lib.to_uint8(_pred_f32(pred), 'round')
  if gt is None:
    return p8, None
  g8 = _gt_u8(gt)
  _same_shape(p8, g8)
  return p8, g8


def _basicsr_eval(y_channel: bool) -> _EvalFn:

  def run(pred, gt):
    p8, g8 = _rounded_pair(pred, gt)
    if g8 is None:
      return {}, Prepared(p8, None, p8, None)
    values = metrics.psnr_ssim(p8, g8, y_channel=y_channel, swapped_y=False)
    return values, Prepared(p8, g8, p8, g8)

  return run


_FULL_EXTRAS = (
    MetricRequest('lpips_alex', note='RGB in [-1, 1], uncropped'),
    MetricRequest('lpips_vgg', note='RGB in [-1, 1], uncropped'),
    MetricRequest('niqe', note='BasicSR NIQE on standard Y, crop 0'),
    MetricRequest('brisque', note='RGB, data range 1'),
    MetricRequest('fid', note='on the same rounded full-size images'),
)


def _basicsr_protocol(name: str, *, y_channel: bool, channel: str,
                      ssim_note: str, reference: str) -> Protocol:
  """A full-resolution, round-to-uint8 BasicSR PSNR / SSIM protocol."""
  return Protocol(
      name=name,
      description=('full resolution, no resize; no correction; '
                   f'{channel}; crop 0; clip + round to uint8; BasicSR '
                   f'PSNR/SSIM{ssim_note}'),
      reference=reference,
      paired_metrics=('psnr', 'ssim'),
      extra_metrics=_FULL_EXTRAS,
      _evaluate=_basicsr_eval(y_channel))


def make_standard() -> Protocol:
  """``standard``: the protocol this project reports by default.

  Prediction clipped to [0, 1] and rounded to uint8 (BasicSR ``tensor2img``),
  compared at full resolution in RGB with no crop and no correction; PSNR and
  SSIM as BasicSR ``calculate_psnr`` / ``calculate_ssim``
  (:mod:`restorect_jax.evaluation.metrics`).
  """
  return _basicsr_protocol(
      'standard', y_channel=False, channel='RGB',
      ssim_note=' (SSIM 11x11 Gaussian per channel)',
      reference='BasicSR calculate_psnr/ssim, tensor2img rounding')


def make_y_channel() -> Protocol:
  """``y_channel``: as ``standard`` on the standard BT.601 Y.

  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (unrounded float, as
  BasicSR's ``test_y_channel`` on a *BGR* input would do it correctly), not
  the R/B-swapped Y of the references (``restorect_files``, ``irflow``).
  """
  return _basicsr_protocol(
      'y_channel', y_channel=True,
      channel='standard BT.601 Y (R 65.481, B 24.966; float, unrounded)',
      ssim_note='',
      reference='BasicSR calculate_psnr/ssim(test_y_channel=True) on BGR')


# ---------------------------------------------------------------------------
# GT-mean variants.
# ---------------------------------------------------------------------------


def _eval_gt_mean_retinexformer(pred, gt):
  restored = np.clip(_pred_f32(pred), 0.0, 1.0)
  if gt is None:
    p8 = quantize_lib.to_uint8(restored, 'round')
    return {}, Prepared(p8, None, p8, None)
  g8 = _gt_u8(gt)
  _same_shape(restored, g8)
  target = g8.astype(np.float32) / np.float32(255.0)
  mean_r = np.mean(_gray_bgr_on_rgb(restored))
  mean_t = np.mean(_gray_bgr_on_rgb(target))
  ratio = _safe_ratio(float(mean_t), float(mean_r))
  if math.isnan(ratio):
    p8 = quantize_lib.to_uint8(restored, 'round')
    return {'psnr': math.nan, 'ssim': math.nan}, Prepared(p8, g8, p8, g8)
  restored = np.clip(restored * np.float32(ratio), 0.0, 1.0)
  mse = np.mean((target - restored) ** 2)
  psnr = 100.0 if mse == 0 else 10.0 * math.log10(1.0 / float(mse))
  # img_as_ubyte: x * 255 in float32, rint.
  p8 = quantize_lib.to_uint8(restored, 'round')
  values = {'psnr': psnr, 'ssim': _matlab_ssim(p8, g8)}
  return values, Prepared(p8, g8, p8, g8)


def make_gt_mean_retinexformer() -> Protocol:
  """``gt_mean_retinexformer``: Retinexformer ``--GT_mean`` testing.

  As in ``Enhancement/test_from_dataset.py`` (caiyuanhao1998/Retinexformer,
  the LOL branch) and ``Enhancement/utils.py``:

  1. ``restored = clip(pred, 0, 1)`` (float32), ``target = gt / 255``.
  2. ``k = mean(gray(target)) / mean(gray(restored))`` where ``gray`` is
     ``cv2.COLOR_BGR2GRAY`` on the RGB float arrays, i.e. ``0.114 R + 0.587 G
     + 0.299 B`` (``spec/peers.md`` §3b: "cv2.COLOR_BGR2GRAY on RGB float
     arrays"); ``restored = clip(restored * k, 0, 1)``.
  3. PSNR on the unquantised floats: ``10 log10(1 / mean((target -
     restored)^2))`` in float32, 100 if the MSE is 0 (``utils.PSNR``).
  4. SSIM (``utils.calculate_ssim``, MATLAB-style, per RGB channel) on
     ``img_as_ubyte`` of both, i.e. rounded uint8 (skimage >= 0.16 rounds).

  Full resolution, crop 0. Retinexformer reports no other metric. An all-black
  prediction makes ``k`` undefined; the reference gives NaN and so does this.
  """
  return Protocol(
      name='gt_mean_retinexformer',
      description=('Retinexformer --GT_mean: clip; scale pred by mean grey '
                   'ratio GT/pred (cv2 BGR2GRAY on RGB floats: 0.114R+0.587G'
                   '+0.299B); clip; PSNR on unquantised floats; SSIM per RGB '
                   'channel on rounded uint8; full res, crop 0'),
      reference=('caiyuanhao1998/Retinexformer Enhancement/'
                 'test_from_dataset.py (GT_mean) + utils.py'),
      paired_metrics=('psnr', 'ssim'),
      extra_metrics=(),
      _evaluate=_eval_gt_mean_retinexformer)


def _eval_gt_mean_cidnet(pred, gt):
  # eval.py saves clamp(output, 0, 1) with ToPILImage: mul(255).byte().
  im1 = _truncate(_pred_f32(pred))
  if gt is None:
    return {}, Prepared(im1, None, im1, None)
  im2 = _gt_u8(gt)
  _same_shape(im1, im2)
  mean_r = float(np.mean(rgb_to_gray_u8(im1)))
  mean_t = float(np.mean(rgb_to_gray_u8(im2)))
  ratio = _safe_ratio(mean_t, mean_r)
  if math.isnan(ratio):
    return ({'psnr': math.nan, 'ssim': math.nan},
            Prepared(im1.astype(np.float64), im2, im1, im2))
  scaled = np.clip(im1 * ratio, 0, 255)  # float64, not re-quantised
  diff = scaled.astype(np.float32) - im2.astype(np.float32)
  psnr = float(10.0 * np.log10(255.0 * 255.0
                               / (np.mean(np.square(diff)) + 1e-8)))
  values = {'psnr': psnr, 'ssim': _matlab_ssim(scaled, im2)}
  return values, Prepared(scaled, im2, im1, im2)


def make_gt_mean_cidnet() -> Protocol:
  """``gt_mean_cidnet``: HVI-CIDNet ``measure.py --use_GT_mean``.

  As in ``measure.py`` / ``eval.py`` (Fediory/HVI-CIDNet):

  1. The prediction is saved by ``eval.py`` as ``ToPILImage(clamp(out, 0,
     1))``: ``x * 255`` truncated to uint8.
  2. ``k = mean(gray(gt)) / mean(gray(pred))`` with ``gray`` = cv2
     ``COLOR_RGB2GRAY`` on the uint8 RGB images (standard weights, integer
     grey; ``spec/peers.md`` §3b: "COLOR_RGB2GRAY on uint8 then float");
     ``pred = clip(pred * k, 0, 255)`` as float64, **not** re-quantised.
  3. PSNR: ``10 log10(255^2 / (mean(diff^2) + 1e-8))`` with float32 diff.
  4. SSIM: MATLAB-style per RGB channel on the float64 scaled prediction.
  5. LPIPS-alex (``lpips.im2tensor``: RGB / 127.5 - 1, uncropped) on the
     scaled float prediction: requested as an extra metric.

  The prediction must already have the GT's size (measure.py resizes it with
  PIL if not; that is not reproduced). An all-black saved prediction makes
  ``k`` undefined (NaN metrics, as in the reference).
  """
  return Protocol(
      name='gt_mean_cidnet',
      description=('HVI-CIDNet --use_GT_mean: clip, truncate to uint8; scale '
                   'by mean grey ratio GT/pred (cv2 RGB2GRAY, integer grey); '
                   'clip to [0,255], unquantised; RGB PSNR (+1e-8) and SSIM '
                   'per channel; full res, crop 0; LPIPS-alex on scaled pred'),
      reference='Fediory/HVI-CIDNet measure.py (use_GT_mean) + eval.py',
      paired_metrics=('psnr', 'ssim'),
      extra_metrics=(MetricRequest(
          'lpips_alex', note='RGB / 127.5 - 1 on the scaled float pred, '
          'uncropped'),),
      _evaluate=_eval_gt_mean_cidnet)


def _eval_gt_mean_kind(pred, gt):
  raw = _pred_f32(pred)
  if gt is None:
    sr = _truncate(raw)
    return {}, Prepared(sr, None, sr, None)
  hr = _gt_u8(gt)
  _same_shape(raw, hr)
  mean_out = float(np.mean(raw))
  mean_gt = float(np.mean(_gray_bgr_on_rgb(hr.astype(np.float32))))
  ratio = _safe_ratio(mean_gt / 255.0, mean_out)
  if math.isnan(ratio):
    sr = _truncate(raw)
    return {'psnr': math.nan, 'ssim': math.nan}, Prepared(sr, hr, sr, hr)
  sr = _truncate(raw * np.float32(ratio))
  mse = float(np.mean((sr.astype(np.float64) - hr.astype(np.float64)) ** 2))
  psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
  ssim = ssim_skimage_columns(rgb_to_gray_u8(sr), rgb_to_gray_u8(hr))
  return {'psnr': psnr, 'ssim': ssim}, Prepared(sr, hr, sr, hr)


def make_gt_mean_kind() -> Protocol:
  """``gt_mean_kind``: KinD-style GT mean as LLFlow's ``test.py`` does it.

  KinD's own ``evaluate_LOLdataset.py`` (line 73, which Retinexformer and
  LLFlow cite) takes its ratio from GT *illumination maps* inside the model,
  so it is not a metric-side protocol; LLFlow's ``code/test.py`` is the
  metric-side form "following KinD" and is what is reproduced here
  (``spec/peers.md`` §3b: "KinD/LLFlow: mean over all channels"):

  1. ``k = mean_gt / mean_out``: ``mean_out`` is the mean over all pixels and
     channels of the **unclipped** float output; ``mean_gt`` is the mean of
     cv2 ``COLOR_BGR2GRAY`` of the float32 RGB GT (0.114 R + 0.587 G + 0.299
     B), divided by 255.
  2. ``sr = clip(out * k, 0, 1) * 255`` truncated to uint8 (LLFlow ``rgb``).
  3. PSNR: skimage ``peak_signal_noise_ratio`` on the uint8 RGB images.
  4. SSIM: ``Measure.ssim`` defaults to ``gray_scale=True``: skimage SSIM of
     the cv2 ``RGB2GRAY`` uint8 grey images with ``multichannel=True``, which
     on 2-D arrays is a per-column 1-D SSIM (:func:`ssim_skimage_columns`).
  5. LPIPS-alex (RGB / 127.5 - 1, uncropped): an extra metric.

  Open in the spec: LLFlow runs its network under ``torch.cuda.amp.autocast``
  so its ``mean_out`` may be float16; here it is float32. Full resolution,
  crop 0.
  """
  return Protocol(
      name='gt_mean_kind',
      description=('LLFlow test.py (KinD-style GT mean): scale raw output by '
                   'mean GT grey (cv2 BGR2GRAY on RGB) / mean of all output '
                   'values; clip, truncate; RGB PSNR; SSIM on grey, skimage '
                   'per-column 7-tap; full res, crop 0'),
      reference=('wyf0912/LLFlow code/test.py + code/Measure.py '
                 '(following zhangyhuaee/KinD evaluate_LOLdataset.py)'),
      paired_metrics=('psnr', 'ssim'),
      extra_metrics=(MetricRequest(
          'lpips_alex', note='RGB uint8 / 127.5 - 1, uncropped'),),
      _evaluate=_eval_gt_mean_kind)


# ---------------------------------------------------------------------------
# restorect_files.
# ---------------------------------------------------------------------------


def _load_resize(img_u8: np.ndarray, size: int | None,
                 quantize: Literal['truncate', 'round'],
                 flavour: resample.Flavour) -> np.ndarray:
  """RestoRect ``load_image_cropped``: /255, resize, *255, to uint8."""
  x = img_u8.astype(np.float32) / np.float32(255.0)
  if size is not None:
    x = resample.resize_bilinear(x, (size, size), flavour=flavour)
  return quantize_lib.quantize_255(x * np.float32(255.0), quantize)


def _resize_u8(img_u8: np.ndarray, size: tuple[int, int],
               flavour: resample.Flavour) -> np.ndarray:
  """cv2 INTER_LINEAR on uint8, approximated: float taps, round half up.

  OpenCV's uint8 path uses 11-bit fixed-point weights, so a pixel can differ
  by one level from this; it only feeds FID.
  """
  x = resample.resize_bilinear(img_u8.astype(np.float32), size,
                               flavour=flavour)
  return quantize_lib.quantize_255(x, 'half_up')


def make_restorect_files(
    name: str = 'restorect_files', *, size: int | None = 256,
    correction_strength: float | None = 0.1, crop_border: int = 5,
    swapped_y: bool = True,
    quantize: Literal['truncate', 'round'] = 'truncate',
    resize_flavour: resample.Flavour = 'ipp') -> Protocol:
  """``restorect_files``: the RestoRect authors' ``evals/evaluation.py``.

  Step for step (``spec/restorect.md`` §5, script at commit 37bb189, its
  ``__main__`` defaults ``crop_border=5, test_y_channel=True,
  correct_mean_variance=True``):

  0. The prediction PNG was written by BasicSR ``tensor2img``: clip to
     [0, 1], round to uint8. The GT is its uint8 file.
  1. Both: ``float32 / 255``, ``cv2.resize(.., (256, 256), INTER_LINEAR)``
     (:func:`resample.resize_bilinear`: half-pixel centres, no
     antialiasing), ``(x * 255).astype(uint8)``: **truncation**. The
     truncation makes the numbers depend on the last bit of the resize, so
     the port is bit-exact to ``cv2.resize`` of opencv-python(-headless)
     5.1.0 (tested with 5.1.0.95 on x86-64): by default as the x86-64 wheels
     compute it (Intel IPP, ``resize_flavour='ipp'``), or as OpenCV without
     IPP (``'generic'``: ``cv2.ipp.setUseIPP(False)``, ARM builds). The
     authors' OpenCV version is not recorded; their numbers are those of
     ``cv2.resize`` in their environment, and the two flavours move about a
     third of the resized values by one float32 ulp, which flips up to ~3 %
     of the truncated uint8 values (about 1e-3 dB of mean PSNR).
  2. :func:`correct_mean_std` with strength 0.1: per-channel mean and std of
     the prediction moved 10 % toward the GT's, clip, truncate.
  3. BasicSR PSNR / SSIM with crop 5 and ``test_y_channel=True`` on RGB
     arrays, i.e. the R/B-swapped Y.
  4. Extra metrics on the corrected 256² prediction: NIQE (BasicSR, crop 5,
     its Y of an RGB array = standard Y of the channel-reversed image:
     ``swap_rb``), LPIPS-VGG (``img2tensor(bgr2rgb=True)`` on RGB arrays:
     channel-reversed, uncropped), BRISQUE (piq, data range 1), UCIQE, UIQM
     (the authors' variants, ``spec/restorect.md`` §5 item 4). BIQI and
     CLIP-IQA are custom scores and not requested.
  5. FID on the GT from step 1 and the **uncorrected** prediction: the saved
     PNG resized by ``cv2.resize`` on uint8 only if it is not already 256²
     (approximated by :func:`_resize_u8`: OpenCV's uint8 path is fixed
     point, one level apart at most).

  The keyword arguments build ablations (the registered protocol uses the
  defaults): ``size=None`` skips the resize but keeps the float round trip,
  ``correction_strength=None`` (or 0) skips the correction, ``quantize=
  'round'`` rounds instead of truncating in steps 1-2, ``resize_flavour=
  'generic'`` resizes as OpenCV without IPP.

  Unpaired: steps 0-1 only; NIQE, BRISQUE, UCIQE, UIQM on the 256² image.

  Args:
    name: Registry name.
    size: Square resize side, or None.
    correction_strength: Step 2 strength, or None.
    crop_border: PSNR / SSIM / NIQE crop.
    swapped_y: R/B-swapped Y (the reference) or standard Y.
    quantize: Quantisation in steps 1-2.
    resize_flavour: ``'ipp'`` or ``'generic'``
      (:func:`resample.resize_bilinear`).

  Returns:
    The protocol.
  """
  if resize_flavour not in resample.FLAVOURS:
    raise ValueError(f'resize_flavour must be one of {resample.FLAVOURS}, '
                     f'got {resize_flavour!r}.')
  if quantize not in ('truncate', 'round'):
    raise ValueError(f"quantize must be 'truncate' or 'round', got "
                     f'{quantize!r}.')

  def run(pred, gt):
    saved = quantize_lib.to_uint8(_pred_f32(pred), 'round')
    p = _load_resize(saved, size, quantize, resize_flavour)
    if size is None or saved.shape[:2] == (size, size):
      pred_fid = saved
    else:
      pred_fid = _resize_u8(saved, (size, size), resize_flavour)
    if gt is None:
      return {}, Prepared(p, None, pred_fid, None)
    g = _load_resize(_gt_u8(gt), size, quantize, resize_flavour)
    if size is None:
      _same_shape(p, g)
    if correction_strength:
      p = correct_mean_std(p.astype(np.float32), g.astype(np.float32),
                           correction_strength, quantize)
    if pred_fid.shape != g.shape:
      raise ValueError(f'pred and gt shapes differ: {pred_fid.shape} vs '
                       f'{g.shape}.')
    values = metrics.psnr_ssim(g, p, crop_border=crop_border, y_channel=True,
                               swapped_y=swapped_y)
    return values, Prepared(p, g, pred_fid, g)

  luma = 'R/B-swapped Y' if swapped_y else 'standard BT.601 Y'
  no_ipp = ', no IPP' if resize_flavour == 'generic' else ''
  resize = (f'both resized to {size}x{size} (cv2 bilinear on floats{no_ipp})'
            if size else 'no resize')
  corr = (f'per-channel mean/std moved {correction_strength:.0%} toward GT'
          if correction_strength else 'no correction')
  quant = 'truncate' if quantize == 'truncate' else 'round'
  return Protocol(
      name=name,
      description=(f'RestoRect evals/evaluation.py: round-saved PNG; {resize}'
                   f', {quant} to uint8; {corr}, clip, {quant}; crop '
                   f'{crop_border}; {luma}; FID on uncorrected images'),
      reference='shouryaverma/RestoRect@37bb189 RestoRect/evals/evaluation.py',
      paired_metrics=('psnr', 'ssim'),
      extra_metrics=(
          MetricRequest('niqe', crop_border=crop_border, swap_rb=swapped_y,
                        note='BasicSR NIQE, Y of an RGB array passed as BGR'),
          MetricRequest('lpips_vgg', swap_rb=True,
                        note='img2tensor(bgr2rgb=True) on RGB: BGR into '
                        'LPIPS-VGG, [-1, 1], uncropped, corrected pred'),
          MetricRequest('brisque', note='piq.brisque, RGB, data range 1'),
          MetricRequest('uciqe', note="authors' skimage-Lab variant"),
          MetricRequest('uiqm', note="authors' variant, 10-px blocks"),
          MetricRequest('fid', source='fid',
                        note='GT 256^2 vs uncorrected pred resized to 256^2, '
                        'Inception pool3, ImageNet normalisation'),
      ),
      _evaluate=run)


# ---------------------------------------------------------------------------
# irflow.
# ---------------------------------------------------------------------------


def _eval_irflow(pred, gt):
  sr, g8 = _rounded_pair(pred, gt)
  if g8 is None:
    return {}, Prepared(sr, None, sr, None)
  crop = 1
  values = {
      'psnr': metrics.psnr(sr, g8, crop_border=crop),
      'ssim': metrics.ssim(sr, g8, crop_border=crop),
  }
  for suffix, swapped in (('y', False), ('y_swapped', True)):
    ys = ycbcr_y_rounded(sr, swapped)
    yg = ycbcr_y_rounded(g8, swapped)
    values[f'psnr_{suffix}'] = metrics.psnr(ys, yg, crop_border=crop)
    values[f'ssim_{suffix}'] = metrics.ssim(ys, yg, crop_border=crop)
  return values, Prepared(sr, g8, sr, g8)


def make_irflow() -> Protocol:
  """``irflow``: IR-Flow ``test.py`` (``spec/irflow.md`` §8).

  ``tensor2img``: clip, ``x * 255`` rounded to uint8 (RGB order). PSNR and
  SSIM (MATLAB-style; the per-channel mean) with a 1-pixel border crop
  (``crop_border = degradation.scale = 1``). Two Y flavours, both rounded to
  uint8 before the 1-px crop:

  * ``psnr_y_swapped`` / ``ssim_y_swapped``: IR-Flow's published
    ``PSNR_Y`` / ``SSIM_Y``, ``bgr2ycbcr`` applied to the RGB array (R weight
    24.966, B 65.481).
  * ``psnr_y`` / ``ssim_y``: the standard BT.601 Y (``rgb2ycbcr`` of the same
    code base: R 65.481, B 24.966), same rounding and crop.

  LPIPS-alex on uint8 / 127.5 - 1 in RGB, **uncropped**: an extra metric.
  IR-Flow has no FID code.
  """
  return Protocol(
      name='irflow',
      description=('IR-Flow test.py: clip + round to uint8; full res; RGB '
                   'PSNR/SSIM crop 1; psnr_y/ssim_y: rounded standard BT.601 '
                   'Y; psnr_y_swapped/ssim_y_swapped: rounded R/B-swapped Y '
                   '(IR-Flow PSNR_Y); crop 1; LPIPS-alex uncropped'),
      reference='fanzh03/IR-Flow test.py + data/util.py bgr2ycbcr',
      paired_metrics=('psnr', 'ssim', 'psnr_y', 'ssim_y', 'psnr_y_swapped',
                      'ssim_y_swapped'),
      extra_metrics=(MetricRequest(
          'lpips_alex', note='RGB uint8 / 127.5 - 1, uncropped'),),
      _evaluate=_eval_irflow)


# ---------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------


def _build_registry() -> dict[str, Protocol]:
  protocols = [
      make_standard(),
      make_y_channel(),
      make_gt_mean_retinexformer(),
      make_gt_mean_cidnet(),
      make_gt_mean_kind(),
      make_restorect_files(),
      make_irflow(),
  ]
  return {p.name: p for p in protocols}


PROTOCOLS: dict[str, Protocol] = _build_registry()


def get(name: str) -> Protocol:
  """The registered protocol called ``name``.

  Args:
    name: A key of :data:`PROTOCOLS`.

  Returns:
    The protocol.

  Raises:
    ValueError: Unknown name (the message lists the known ones).
  """
  try:
    return PROTOCOLS[name]
  except KeyError:
    raise ValueError(f'Unknown evaluation protocol {name!r}; known: '
                     f'{", ".join(PROTOCOLS)}.') from None
