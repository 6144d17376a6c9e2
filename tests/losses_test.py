"""Tests for restorect_jax.losses: reference parity and hand-computed values.

Parity cases live in ``$RESTORECT_SHARED/parity`` (default: the ``shared``
folder beside the repository root); a missing folder is a failure, not a skip.
"""

import json
import math
import os
from pathlib import Path

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax.methods.restorect import losses

_SHARED = Path(os.environ.get(
    'RESTORECT_SHARED', Path(__file__).resolve().parents[2] / 'shared'))
_PARITY = _SHARED / 'parity'
_LOSS_CASES = ('loss_flex_default', 'loss_flex_yml', 'loss_kd', 'loss_hvi',
               'loss_decom_constraints_s1', 'loss_decom_constraints_s2')


def _nhwc(x: np.ndarray) -> jnp.ndarray:
  return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _nchw(x: jax.Array) -> np.ndarray:
  return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _decomnet_forward(npz, img: jax.Array) -> jax.Array:
  """Reference DecomNet (spec §2.1) in NHWC, only to check out/R and out/L."""
  x = img
  for i in (0, 2, 4, 6):
    w = jnp.asarray(np.transpose(npz[f'sd/decom.{i}.weight'], (2, 3, 1, 0)))
    x = jax.lax.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    x = x + jnp.asarray(npz[f'sd/decom.{i}.bias'])
    x = jax.nn.leaky_relu(x, 0.2) if i < 6 else jax.nn.relu(x)
  return x


class ParityTest(parameterized.TestCase):
  """Every out/* of the six loss fixtures, at the per-output tolerance."""

  def _load(self, case: str):
    index_path = _PARITY / 'index.json'
    npz_path = _PARITY / 'restorect' / f'{case}.npz'
    if not index_path.is_file() or not npz_path.is_file():
      self.fail(f'Parity fixtures missing: expected {npz_path} and '
                f'{index_path} (set RESTORECT_SHARED to the shared folder).')
    index = json.loads(index_path.read_text())
    entry = next(e for e in index if e['case'] == case)
    return np.load(npz_path), entry

  def _check_all(self, case: str, npz, entry, ours: dict) -> None:
    expected = {k for k in npz.files if k.startswith('out/')}
    self.assertEqual(set(ours), expected)
    for name in sorted(expected):
      got = np.asarray(ours[name], np.float64)
      ref = npz[name].astype(np.float64)
      self.assertEqual(got.shape, ref.shape, msg=f'{case} {name}')
      err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
      tol = entry['tolerance_out'][name]
      self.assertLessEqual(err, tol, msg=f'{case} {name}: max|Δ| {err}')

  def test_parity_folder_present(self):
    self.assertTrue(_PARITY.is_dir(),
                    f'Parity folder missing: {_PARITY} (set RESTORECT_SHARED).')
    for case in _LOSS_CASES:
      path = _PARITY / 'restorect' / f'{case}.npz'
      self.assertTrue(path.is_file(), f'Parity fixture missing: {path}')

  def test_kd(self):
    npz, entry = self._load('loss_kd')
    teacher = [jnp.asarray(npz['in/s1_0']), jnp.asarray(npz['in/s1_1'])]
    student = [jnp.asarray(npz['in/s2_0']), jnp.asarray(npz['in/s2_1'])]
    with jax.default_matmul_precision('float32'):
      kl, l1 = losses.kd_loss(teacher, student,
                              temperature=entry['kwargs']['temperature'])
    self._check_all('loss_kd', npz, entry, {'out/kd_dis': kl,
                                            'out/kd_abs': l1})

  @parameterized.parameters('loss_flex_default', 'loss_flex_yml')
  def test_flex(self, case):
    npz, entry = self._load(case)
    kw = entry['kwargs']
    if not kw:  # class defaults
      np.testing.assert_allclose(npz['sd/layer_weights'],
                                 losses.FLEX_DEFAULT_LAYER_WEIGHTS, rtol=1e-6)
    opts = dict(
        loss_weight=kw.get('loss_weight'),
        layer_weights=tuple(float(w) for w in npz['sd/layer_weights']),
        snr_threshold=kw.get('snr_threshold', 0.4),
        outlier_percentile=kw.get('outlier_percentile', 95.0))
    t2 = [jnp.asarray(npz[f'in/t2d_{i}']) for i in range(2)]
    s2 = [jnp.asarray(npz[f'in/s2d_{i}']) for i in range(2)]
    t4 = [_nhwc(npz[f'in/t4d_{i}']) for i in range(3)]
    s4 = [_nhwc(npz[f'in/s4d_{i}']) for i in range(3)]
    with jax.default_matmul_precision('float32'):
      ours = {
          'out/loss_2d': losses.flex_loss(
              t2, s2, timestep=0.2, max_timestep=1.0, **opts),
          'out/loss_4d': losses.flex_loss(
              t4, s4, timestep=0.2, max_timestep=1.0, **opts),
          'out/loss_4d_notimestep': losses.flex_loss(t4, s4, **opts),
          'out/loss_2d_gated': losses.flex_loss(
              t2, s2, timestep=0.5, max_timestep=1.0, **opts),
          'out/layer4d_0': losses.flex_layer_loss(
              t4[0], s4[0], 0, layer_weights=opts['layer_weights'],
              outlier_percentile=opts['outlier_percentile']),
          'out/mask4d_0': _nchw(losses.flex_outlier_mask(
              losses.flex_cross_normalize(t4[0], s4[0])[1],
              opts['outlier_percentile'])),
      }
    self._check_all(case, npz, entry, ours)

  def test_hvi(self):
    npz, entry = self._load('loss_hvi')
    pred, gt = _nhwc(npz['in/pred']), _nhwc(npz['in/gt'])
    k = jnp.asarray(npz['sd/hvi_transform.k'])
    with jax.default_matmul_precision('float32'):
      ours = {
          'out/loss': losses.hvi_color_loss(
              pred, gt, weight=entry['kwargs']['weight'], k=k),
          'out/hvi_pred': _nchw(jnp.concatenate(losses.rgb_to_hvi(pred, k),
                                                axis=-1)),
          'out/hvi_gt': _nchw(jnp.concatenate(losses.rgb_to_hvi(gt, k),
                                              axis=-1)),
      }
    self._check_all('loss_hvi', npz, entry, ours)

  @parameterized.parameters(
      ('loss_decom_constraints_s1', (0.05, 0.05, 0.05)),
      ('loss_decom_constraints_s2', (0.05, 0.2, 0.05)))
  def test_decom_constraints(self, case, weights):
    npz, entry = self._load(case)
    img = _nhwc(npz['in/img'])
    refl, illum = _nhwc(npz['out/R']), _nhwc(npz['out/L'])
    s = jnp.asarray(npz['sd/anisotropic_diffusion.s'])
    with jax.default_matmul_precision('float32'):
      raw = _decomnet_forward(npz, img)
      terms = losses.decom_constraints(img, refl, illum, s, weights)
      ours = {f'out/{k}': v for k, v in terms.items()}
      ours.update({
          'out/R': _nchw(raw[..., :3]),
          'out/L': _nchw(raw[..., 3:]),
          'out/aniso_img': _nchw(losses.anisotropic_diffusion(img, s)),
          'out/aniso_R': _nchw(losses.anisotropic_diffusion(refl, s)),
          'out/grad_weights': _nchw(losses.gradient_weighting(
              jnp.broadcast_to(illum, illum.shape[:3] + (3,)))),
      })
    self._check_all(case, npz, entry, ours)


def _img(rows) -> jax.Array:
  """2-D list (H, W) or (H, W, C) → (1, H, W, C) float32."""
  x = jnp.asarray(rows, jnp.float32)
  return x[None, ..., None] if x.ndim == 2 else x[None]


class BasicLossTest(absltest.TestCase):

  def test_l1_mse(self):
    a = _img([[0., 1.], [2., 3.]])
    b = _img([[1., 1.], [0., 3.]])
    # |a-b| = 1, 0, 2, 0 → mean 0.75; (a-b)² = 1, 0, 4, 0 → mean 1.25.
    self.assertAlmostEqual(float(losses.l1_loss(a, b)), 0.75, places=6)
    self.assertAlmostEqual(float(losses.mse_loss(a, b)), 1.25, places=6)
    self.assertEqual(float(losses.l1_loss(a, a)), 0.0)
    self.assertEqual(float(losses.mse_loss(a, a)), 0.0)


class KdLossTest(absltest.TestCase):

  def test_hand_values(self):
    t = jnp.zeros((1, 4))
    s = jnp.asarray([[math.log(3.0), 0., 0., 0.]])
    # T = 1: p = softmax(t) = [1/4]*4, q = softmax(s) = [3/6, 1/6, 1/6, 1/6].
    # KL(p||q) = 1/4·ln((1/4)/(1/2)) + 3·1/4·ln((1/4)/(1/6))
    #          = 1/4·ln(1/2) + 3/4·ln(3/2) = 0.130812; batchmean /1.
    # L1 = mean|s - t| = ln3 / 4 = 0.274653.
    kl_ref = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    kl, l1 = losses.kd_loss([t], [s], temperature=1.0)
    self.assertAlmostEqual(float(kl), kl_ref, places=6)
    self.assertAlmostEqual(float(l1), math.log(3.0) / 4, places=6)
    # T = 0.5 with s/2 gives the same distributions; L1 halves. Two identical
    # rows (batchmean: sum / B) and two list items (summed) → 2·KL, 2·L1.
    t2, s2 = jnp.zeros((2, 4)), jnp.tile(s / 2, (2, 1))
    kl, l1 = losses.kd_loss([t2, t2], [s2, s2], temperature=0.5)
    self.assertAlmostEqual(float(kl), 2 * kl_ref, places=5)
    self.assertAlmostEqual(float(l1), 2 * math.log(3.0) / 8, places=6)

  def test_direction_teacher_is_target(self):
    t = jnp.asarray([[math.log(3.0), 0., 0., 0.]])
    s = jnp.zeros((1, 4))
    # Now p = [1/2, 1/6, 1/6, 1/6], q = 1/4 each:
    # KL = 1/2·ln 2 + 3/6·ln(2/3) = 0.143841 (≠ 0.130812 of the reverse).
    kl, _ = losses.kd_loss([t], [s], temperature=1.0)
    self.assertAlmostEqual(
        float(kl), 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0), places=6)

  def test_zero_and_grad(self):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4))
    kl, l1 = losses.kd_loss([x], [x])
    self.assertAlmostEqual(float(kl), 0.0, places=6)
    self.assertEqual(float(l1), 0.0)
    t = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
    g = jax.jit(jax.grad(lambda s: sum(losses.kd_loss([t], [s]))))(x)
    self.assertTrue(bool(jnp.all(jnp.isfinite(g))))


class FlexLossTest(absltest.TestCase):

  # t = [1, 2, 3, 4], s = [1, 3, 5, 7]: μ_s = 4, σ_s = sqrt((9+1+1+9)/4) = √5.
  # ŝ = [-3, -1, 1, 3]/√5, t̂ = [-3, -2, -1, 0]/√5, t̂ - ŝ = [0, -1, -2, -3]/√5;
  # Σ(t̂-ŝ)² = 14/5, mask all ones → ℓ = 2.8 / 4 = 0.7 (times layer weight).
  _T = jnp.asarray([[1., 2., 3., 4.]])
  _S = jnp.asarray([[1., 3., 5., 7.]])

  def test_2d_hand_values(self):
    t_hat, s_hat = losses.flex_cross_normalize(self._T, self._S)
    r5 = math.sqrt(5.0)
    np.testing.assert_allclose(s_hat, [[-3 / r5, -1 / r5, 1 / r5, 3 / r5]],
                               rtol=1e-6)
    np.testing.assert_allclose(t_hat, [[-3 / r5, -2 / r5, -1 / r5, 0.]],
                               atol=1e-6)
    # Layer 0 weight 2.0 → 1.4; loss_weight 0.5 · mean over 1 layer → 0.7.
    layer = losses.flex_layer_loss(self._T, self._S, 0,
                                   layer_weights=(2.0, 1.41, 1.0))
    self.assertAlmostEqual(float(layer), 1.4, places=5)
    self.assertAlmostEqual(
        float(losses.flex_loss([self._T], [self._S])), 0.7, places=5)
    # Two layers: 0.5 · (2.0·0.7 + 1.41·0.7) / 2 = 0.59675.
    two = losses.flex_loss([self._T, self._T], [self._S, self._S])
    self.assertAlmostEqual(float(two), 0.59675, places=5)
    # Four layers with three weights: the 4th uses 1.0 →
    # 0.5 · 0.7 · (2.0 + 1.41 + 1.0 + 1.0) / 4 = 0.473375.
    four = losses.flex_loss([self._T] * 4, [self._S] * 4)
    self.assertAlmostEqual(float(four), 0.473375, places=5)
    # Class defaults (loss weight 0.15, layer weight 1/sqrt(4) = 0.5):
    # 0.15 · 0.5 · 0.7 = 0.0525.
    default = losses.flex_loss([self._T], [self._S], loss_weight=None,
                               layer_weights=None)
    self.assertAlmostEqual(float(default), 0.0525, places=6)

  def test_snr_gate(self):
    def flex(**kw):
      return float(losses.flex_loss([self._T], [self._S], **kw))
    self.assertAlmostEqual(flex(timestep=0.39, max_timestep=1.0), 0.7,
                           places=5)
    self.assertEqual(flex(timestep=0.4, max_timestep=1.0), 0.0)  # not < 0.4
    self.assertEqual(flex(timestep=0.5, max_timestep=1.0), 0.0)
    # max_timestep > 1 normalises: 3/10 on, 5/10 off.
    self.assertAlmostEqual(flex(timestep=3.0, max_timestep=10.0), 0.7,
                           places=5)
    self.assertEqual(flex(timestep=5.0, max_timestep=10.0), 0.0)
    # max_timestep ≤ 1 is not used (reference): 0.3 vs 0.4 → on.
    self.assertAlmostEqual(flex(timestep=0.3, max_timestep=0.5), 0.7,
                           places=5)
    gated = jax.jit(lambda t: losses.flex_loss([self._T], [self._S],
                                               timestep=t))
    self.assertEqual(float(gated(0.6)), 0.0)
    self.assertAlmostEqual(float(gated(0.1)), 0.7, places=5)

  def test_4d_mask_matters(self):
    # One (B=1, H=2, W=2, C=1) map. s = [[0, 0], [0, 4]]: μ = 1,
    # σ = sqrt((1+1+1+9)/4) = √3, a = 1/√3, ŝ = [-a, -a, -a, 3a].
    # |ŝ| sorted [a, a, a, 3a]; 95th pct (linear): pos 0.95·3 = 2.85 →
    # a + 0.85·(3a - a) = 2.7a → pixel (1, 1) (3a > 2.7a) is an outlier.
    # t = [[1, 0], [0, 0]] → t̂ = [0, -a, -a, -a]; t̂ - ŝ = [a, 0, 0, -4a].
    # Masked: Σ = a² = 1/3, Σmask = 3 → 1/9. Unmasked: (1/3 + 16/3)/4 = 17/12.
    # Resolution weight (4096 / 4)^0.25 = 4√2; layer weight 2.0.
    t = _img([[1., 0.], [0., 0.]])
    s = _img([[0., 0.], [0., 4.]])
    _, s_hat = losses.flex_cross_normalize(t, s)
    np.testing.assert_array_equal(
        losses.flex_outlier_mask(s_hat, 95.0)[0, ..., 0], [[1, 1], [1, 0]])
    w = 2.0 * 4 * math.sqrt(2.0)
    masked = losses.flex_layer_loss(t, s, 0, layer_weights=(2.0,))
    self.assertAlmostEqual(float(masked), w / 9, places=5)
    unmasked = losses.flex_layer_loss(t, s, 0, layer_weights=(2.0,),
                                      apply_outlier_detection=False)
    self.assertAlmostEqual(float(unmasked), w * 17 / 12, places=4)
    # 2-D features never get a mask.
    np.testing.assert_array_equal(
        losses.flex_outlier_mask(self._S, 95.0), jnp.ones((1, 4)))

  def test_zero_and_grad(self):
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    t2 = jax.random.normal(key1, (2, 8))
    t4 = jax.random.normal(key2, (2, 4, 4, 3))
    self.assertEqual(float(losses.flex_loss([t2, t4], [t2, t4])), 0.0)
    s2, s4 = t2 + 0.3 * jnp.sin(t2), t4 + 0.3 * jnp.cos(3 * t4)
    g2, g4 = jax.jit(jax.grad(
        lambda a, b: losses.flex_loss([t2, t4], [a, b]),
        argnums=(0, 1)))(s2, s4)
    self.assertTrue(bool(jnp.all(jnp.isfinite(g2))))
    self.assertTrue(bool(jnp.all(jnp.isfinite(g4))))
    self.assertGreater(float(jnp.abs(g4).sum()), 0.0)


class HviLossTest(absltest.TestCase):

  # 2x2 image: red (1, 0, 0), grey (.5, .5, .5) / black (0, 0, 0), green.
  _PRED = _img([[[1., 0., 0.], [.5, .5, .5]], [[0., 0., 0.], [0., 1., 0.]]])

  def test_pixels(self):
    h, v, i = (m[0, ..., 0] for m in losses.rgb_to_hvi(self._PRED))
    c1 = math.sin(3.14159 / 2) + 1e-6  # C_k at I = 1, k = 1 (≈ 1.000001).
    # red: hue 0, S 1 → H' = C_k·cos 0, V' = 0, I = 1.
    # grey: S = 0 → H' = V' = 0, I = .5. black: everything 0.
    # green: hue = (2 + 0)/6 = 1/3 → H' = C_k cos(π/9), V' = C_k sin(π/9).
    ang = 3.14159 / 9
    np.testing.assert_allclose(h, [[c1, 0.], [0., c1 * math.cos(ang)]],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v, [[0., 0.], [0., c1 * math.sin(ang)]],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(i, [[1., .5], [0., 1.]], atol=1e-7)

  def test_clamps(self):
    # Out-of-range red (1.2, -.1, -.1) is clamped to (1, 0, 0); k = 10 → 5,
    # so H' = 5·sin(π/2) + 1e-6; k = 0 → 0.1.
    red = _img([[[1.2, -.1, -.1]]])
    s = math.sin(3.14159 / 2)
    self.assertAlmostEqual(float(losses.rgb_to_hvi(red, 10.)[0].squeeze()),
                           5 * s + 1e-6, places=5)
    self.assertAlmostEqual(
        float(losses.rgb_to_hvi(red, jnp.float32(0.))[0].squeeze()),
        0.1 * s + 1e-6, places=6)

  def test_loss_hand_value(self):
    gt = jnp.zeros_like(self._PRED)
    # gt black → all maps 0. L1 over 4 pixels:
    # H': (c1 + 0 + 0 + c1 cos(π/9))/4, V': c1 sin(π/9)/4, I: (1+.5+0+1)/4.
    c1 = math.sin(3.14159 / 2) + 1e-6
    ang = 3.14159 / 9
    ref = 0.05 * ((c1 + c1 * math.cos(ang)) / 4 + c1 * math.sin(ang) / 4 +
                  2.5 / 4)
    self.assertAlmostEqual(float(losses.hvi_color_loss(self._PRED, gt)),
                           ref, places=6)
    self.assertEqual(float(losses.hvi_color_loss(self._PRED, self._PRED)),
                     0.0)

  def test_nan_returns_zero(self):
    bad = self._PRED.at[0, 0, 0, 0].set(jnp.nan)
    self.assertEqual(
        float(losses.hvi_color_loss(bad, jnp.zeros_like(bad))), 0.0)

  def test_grad_finite(self):
    gt = jax.random.uniform(jax.random.PRNGKey(0), (1, 4, 4, 3))
    pred = jnp.concatenate([self._PRED, 0.3 + 0.4 * self._PRED], axis=1)
    pred = jnp.pad(pred, ((0, 0), (0, 0), (0, 2), (0, 0)), constant_values=.2)
    g = jax.jit(jax.grad(lambda p: losses.hvi_color_loss(p, gt)))(pred)
    self.assertTrue(bool(jnp.all(jnp.isfinite(g))))
    gk = jax.jit(jax.grad(
        lambda k: losses.hvi_color_loss(pred, gt, k=k)))(1.0)
    self.assertTrue(bool(jnp.isfinite(gk)))


class DecomConstraintsTest(absltest.TestCase):

  # One-channel 2x2 x = [[1, 0], [0, 0]]. With zero padding only the padded
  # pixel (1, 1) is non-zero, so the response at (i, j) is k[1-i][1-j]:
  # Sobel x [[-1,0,1],[-2,0,2],[-1,0,1]] → gx = [[0, -2], [0, -1]],
  # Sobel y (transpose)                  → gy = [[0, 0], [-2, -1]].
  # |∇| = [[1e-4, 2], [2, √2]]; s = 1: c = exp(-|∇|²) =
  # [[≈1, e^-4], [e^-4, e^-2]]; c·gx + c·gy = [[0, -2e^-4], [-2e^-4, -2e^-2]].
  # The 3x3 mean filter (zero padding) sees the whole 2x2 image at every
  # pixel: A = (-4e^-4 - 2e^-2)/9 = -0.0382148 everywhere.
  _X = _img([[1., 0.], [0., 0.]])

  def test_anisotropic_diffusion(self):
    ref = (-4 * math.exp(-4) - 2 * math.exp(-2)) / 9
    np.testing.assert_allclose(losses.anisotropic_diffusion(self._X, 1.0),
                               jnp.full((1, 2, 2, 1), ref), rtol=1e-5)
    # s = 2 is clamped to 1 (same result); s = 1e-3 is clamped to 0.01 and
    # the exponent to -10: c = exp(-10) at the three edge pixels →
    # A = -6e^-10 / 9.
    np.testing.assert_allclose(losses.anisotropic_diffusion(self._X, 2.0),
                               jnp.full((1, 2, 2, 1), ref), rtol=1e-5)
    np.testing.assert_allclose(
        losses.anisotropic_diffusion(self._X, 1e-3),
        jnp.full((1, 2, 2, 1), -6 * math.exp(-10) / 9), rtol=1e-4)

  def test_texture_consistency(self):
    # A(R = 0) = 0 → L1 = |A(x)| = 0.0382148; identical inputs → 0.
    ref = (4 * math.exp(-4) + 2 * math.exp(-2)) / 9
    zero = jnp.zeros_like(self._X)
    self.assertAlmostEqual(
        float(losses.texture_consistency(self._X, zero, 1.0)), ref, places=6)
    self.assertEqual(
        float(losses.texture_consistency(self._X, self._X, 0.1)), 0.0)

  def test_gradient_weighting_and_smoothing(self):
    illum = _img([[0., 1.], [2., 4.]])
    # |∂x| = [[1], [2]] → replicate → [[1, 1], [2, 2]];
    # |∂y| = [[2, 3]]   → replicate → [[2, 3], [2, 3]].
    # w = exp(-sqrt(gx² + gy²)) = exp(-[[√5, √10], [√8, √13]]).
    w_ref = np.exp(-np.sqrt([[5., 10.], [8., 13.]]))
    np.testing.assert_allclose(losses.gradient_weighting(illum)[0, ..., 0],
                               w_ref, rtol=1e-5)
    # Smoothing pairs ∂x (column 0) with w[:, 1:] (column 1) and ∂y (row 0)
    # with w[1:] (row 1):
    # x: mean((w01·1)², (w11·2)²), y: mean((w10·2)², (w11·3)²).
    w01, w10, w11 = w_ref[0, 1], w_ref[1, 0], w_ref[1, 1]
    ref = ((w01**2 + 4 * w11**2) / 2 + (4 * w10**2 + 9 * w11**2) / 2)
    self.assertAlmostEqual(float(losses.illumination_smoothing(illum)),
                           ref, places=7)
    # Three identical channels give the same value as one.
    self.assertAlmostEqual(
        float(losses.illumination_smoothing(jnp.tile(illum, (1, 1, 1, 3)))),
        ref, places=7)
    # Constant L: zero differences → 0; weights exp(-sqrt(1e-8)) = e^-1e-4.
    const = jnp.full((1, 2, 2, 1), 0.7)
    self.assertEqual(float(losses.illumination_smoothing(const)), 0.0)
    np.testing.assert_allclose(losses.gradient_weighting(const),
                               jnp.full((1, 2, 2, 1), math.exp(-1e-4)),
                               rtol=1e-6)

  def test_reconstruction_and_weights(self):
    img = jnp.full((1, 2, 2, 3), 0.5)
    refl = jnp.full((1, 2, 2, 3), 0.5)
    illum = _img([[1., 2.], [0., 1.]])
    # R·L = [[.5, 1], [0, .5]] per channel; R·L - img = [[0, .5], [-.5, 0]]
    # → squares 0, .25, .25, 0 → MSE 0.125.
    self.assertAlmostEqual(
        float(losses.reconstruction(img, refl, illum)), 0.125, places=7)
    self.assertEqual(float(losses.reconstruction(
        img, refl, jnp.ones((1, 2, 2, 1)))), 0.0)
    terms = losses.decom_constraints(img, refl, illum, 0.1,
                                     weights=(0.05, 0.2, 0.05))
    self.assertEqual(set(terms), {'texture_consistency',
                                  'illumination_smoothing', 'reconstruction'})
    self.assertAlmostEqual(float(terms['reconstruction']), 0.05 * 0.125,
                           places=7)
    self.assertAlmostEqual(
        float(terms['illumination_smoothing']),
        0.2 * float(losses.illumination_smoothing(illum)), places=7)
    self.assertEqual(float(terms['texture_consistency']), 0.0)  # R = img

  def test_grads_finite(self):
    key1, key2, key3 = jax.random.split(jax.random.PRNGKey(0), 3)
    img = jax.random.uniform(key1, (1, 4, 4, 3))
    refl = jax.random.uniform(key2, (1, 4, 4, 3))
    illum = jax.random.uniform(key3, (1, 4, 4, 1))

    def total(r, l):
      return sum(losses.decom_constraints(img, r, l, 0.1).values())

    g_r, g_l = jax.jit(jax.grad(total, argnums=(0, 1)))(refl, illum)
    self.assertTrue(bool(jnp.all(jnp.isfinite(g_r))))
    self.assertTrue(bool(jnp.all(jnp.isfinite(g_l))))
    g_s = jax.jit(jax.grad(
        lambda s: losses.texture_consistency(img, refl, s)))(0.1)
    self.assertTrue(bool(jnp.isfinite(g_s)))
    for fn in (losses.l1_loss, losses.mse_loss):
      g = jax.grad(fn)(refl, img)
      self.assertTrue(bool(jnp.all(jnp.isfinite(g))))


if __name__ == '__main__':
  absltest.main()
