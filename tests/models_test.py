"""Module shapes, dtypes, parameter counts and bad-input errors."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import inference
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import PriorEncoder
from restorect_jax.models import RGFormer
from restorect_jax.models import RetinexPriorEncoder
from restorect_jax.models import VelocityPredictor
from restorect_jax.models import init_variables
from restorect_jax.models import layers

S = jax.ShapeDtypeStruct
F32 = jnp.float32


def _count(module, *args) -> int:
  v = jax.eval_shape(module.init, jax.random.key(0), *args)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v['params']))


class ParamCountTest(absltest.TestCase):
  """Counts of the full-size networks equal the reference's (spec §3)."""

  def test_counts(self):
    lq, rex, z = S((1, 32, 32, 3), F32), S((1, 32, 32, 4), F32), S((1, 256),
                                                                    F32)
    self.assertEqual(_count(Model('teacher'), lq, lq, rex, rex), 25_888_763)
    self.assertEqual(_count(Model('student'), lq, rex, z, z), 26_219_003)
    self.assertEqual(_count(Model('interface'), lq, rex, z, z), 26_105_911)
    self.assertEqual(_count(RGFormer(), lq, z, z), 23_552_315)
    self.assertEqual(_count(RGFormer(decom_head=False), lq, z, z), 23_439_223)
    self.assertEqual(_count(RetinexPriorEncoder(128, normalize=False), rex,
                            rex), 1_263_616)
    self.assertEqual(_count(PriorEncoder(96, normalize=False), lq, lq),
                     1_072_832)
    self.assertEqual(_count(PriorEncoder(48), lq), 1_045_184)
    self.assertEqual(_count(RetinexPriorEncoder(64), rex), 1_226_752)
    self.assertEqual(_count(VelocityPredictor(), z, S((1,), F32), z), 197_376)

  def test_withbias_variant_adds_ln_biases(self):
    lq, z = S((1, 32, 32, 3), F32), S((1, 256), F32)
    # One bias per LayerNorm channel: 2 norms per block, widths by level.
    extra = 2 * (3 * 64 + 3 * 128 + 3 * 256 + 3 * 512 + 3 * 256 + 3 * 128 +
                 3 * 128 + 3 * 128)
    self.assertEqual(_count(RGFormer(layer_norm_type='WithBias'), lq, z, z),
                     23_552_315 + extra)


class PixelShuffleTest(absltest.TestCase):

  def test_torch_channel_order(self):
    # One channel, 4x4 image with value = 10*row + col; unshuffle by 2:
    # out channel 2i + j at (h, w) holds input pixel (2h + i, 2w + j).
    x = (10 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(F32)
    y = np.asarray(layers.pixel_unshuffle(x[None, :, :, None], 2))[0]
    self.assertEqual(y.shape, (2, 2, 4))
    np.testing.assert_array_equal(y[0, 0], [0, 1, 10, 11])
    np.testing.assert_array_equal(y[1, 1], [22, 23, 32, 33])
    back = layers.pixel_shuffle(y[None], 2)[0, :, :, 0]
    np.testing.assert_array_equal(back, x)

  def test_multi_channel_order(self):
    # Channel c of the input lands in output channels c*4 ... c*4+3.
    x = np.zeros((1, 2, 2, 2), F32)
    x[0, :, :, 1] = 1
    y = np.asarray(layers.pixel_unshuffle(x, 2))[0, 0, 0]
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, 1, 1, 1])


class LayerTest(absltest.TestCase):

  def test_depthwise_equals_grouped_conv(self):
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4))
    ref = jax.lax.conv_general_dilated(
        x, w[:, :, None, :], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=4)
    np.testing.assert_allclose(layers.depthwise_conv3x3(x, w), ref,
                               atol=1e-5)

  def test_scln_clamps_and_handles_constant_input(self):
    norm = layers.Norm('SpatialChannel')
    x = np.zeros((1, 8, 8, 4), F32)
    # One outlier among 256 values normalises to sqrt(255) ≈ 16 → clamped.
    x[0, 0, 0, 0] = 1e4
    v = norm.init(jax.random.key(0), x)
    y = np.asarray(norm.apply(v, x))
    self.assertAlmostEqual(y.max(), 10.0)
    # Constant input: variance floored at 1e-5, no NaN.
    y = np.asarray(norm.apply(v, np.full((1, 8, 8, 4), 3.0, F32)))
    np.testing.assert_array_equal(y, 0.0)

  def test_unknown_norm_type(self):
    with self.assertRaisesRegex(ValueError, 'layer_norm_type'):
      layers.Norm('BiasFree').init(jax.random.key(0), np.zeros((1, 4, 4, 2)))

  def test_reflect_pad(self):
    x = np.arange(5, dtype=F32).reshape(1, 1, 5, 1)
    x = np.repeat(x, 5, axis=1)
    y, hw = layers.reflect_pad_to_multiple(x, 8)
    self.assertEqual(hw, (5, 5))
    self.assertEqual(y.shape, (1, 8, 8, 1))
    np.testing.assert_array_equal(np.asarray(y)[0, 0, :, 0],
                                  [0, 1, 2, 3, 4, 3, 2, 1])
    with self.assertRaisesRegex(ValueError, 'too small'):
      layers.reflect_pad_to_multiple(x[:, :3], 8)


class ForwardTest(parameterized.TestCase):

  @parameterized.parameters('float32', 'bfloat16')
  def test_tiny_models_shapes_and_dtypes(self, dtype):
    lq = jnp.full((2, 16, 24, 3), 0.3)
    rex = jnp.full((2, 16, 24, 4), 0.2)
    z = jax.random.normal(jax.random.key(0), (2, 256))
    kw = dict(dtype=dtype)
    t = Model('teacher', 'demo', **kw)
    vt = init_variables(t, 0, lq, lq, rex, rex)
    res = jax.jit(t.apply)(vt, lq, lq, rex, rex)
    self.assertEqual(res['out'].shape, (2, 16, 24, 3))
    self.assertEqual(res['out'].dtype, jnp.dtype(dtype))
    self.assertEqual(res['decom_mat'].shape, (2, 16, 24, 4))
    self.assertEqual(res['z_rex'].shape, (2, 256))
    for leaf in jax.tree.leaves(vt['params']):
      self.assertEqual(leaf.dtype, jnp.float32)  # params stay f32
    s = Model('interface', 'demo', **kw)
    v = init_variables(s, 0, lq, rex, z, z)
    out = jax.jit(s.apply, static_argnums=5)(v, lq, rex, z, z, 4)
    self.assertEqual(out.shape, (2, 16, 24, 3))
    self.assertEqual(out.dtype, jnp.dtype(dtype))
    if dtype == 'bfloat16':
      # The same params computed in float32: bfloat16 keeps 8 significand
      # bits (2^-8 ≈ 4e-3 relative at outputs ≤ 0.4); measured max|Δ| is
      # 3.7e-3 (interface) and 3.0e-3 (teacher), 2e-2 leaves headroom.
      want_t = jax.jit(Model('teacher', 'demo').apply)(vt, lq, lq, rex, rex)
      np.testing.assert_allclose(np.asarray(res['out'], np.float32),
                                 want_t['out'], atol=2e-2)
      want = jax.jit(Model('interface', 'demo').apply, static_argnums=5)(
          v, lq, rex, z, z, 4)
      np.testing.assert_allclose(np.asarray(out, np.float32), want,
                                 atol=2e-2)

  def test_restore_pads_crops_and_is_seeded_by_name(self):
    model = Model('interface', 'demo')
    lq = jax.random.uniform(jax.random.key(3), (1, 13, 21, 3))
    z = jnp.zeros((1, 256))
    params = {
        'interface': init_variables(model, 0, jnp.zeros((1, 16, 24, 3)),
                                    jnp.zeros((1, 16, 24, 4)), z, z),
        'decom_low': init_variables(DecomNet(), 1, lq),
    }
    restore = lambda names, seed: inference.restore(
        params, lq, names=names, rf_steps=3, seed=seed, model=model)
    a = restore(['0001.png'], 7)
    # The noise is keyed by the file stem: folder and extension do not
    # matter; another seed or another name gives another output.
    b = restore(['/elsewhere/0001.jpg'], 7)
    c = restore(['0001.png'], 8)
    d = restore(['0002.png'], 7)
    self.assertEqual(a.shape, (1, 13, 21, 3))
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))
    self.assertFalse(np.array_equal(a, d))
    self.assertGreaterEqual(float(a.min()), 0.0)
    self.assertLessEqual(float(a.max()), 1.0)


class BadInputTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.g = RGFormer(
        dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
        decom_head=False)
    self.z = jnp.zeros((1, 256))

  def test_wrong_channels(self):
    with self.assertRaisesRegex(ValueError,
                                r'\(B, H, W, 3\), got shape \(1, 16, 16, 4\)'):
      self.g.init(jax.random.key(0), jnp.zeros((1, 16, 16, 4)), self.z,
                  self.z)

  def test_not_multiple_of_8(self):
    with self.assertRaisesRegex(ValueError, r'multiples of 8 .*got 12x16'):
      self.g.init(jax.random.key(0), jnp.zeros((1, 12, 16, 3)), self.z,
                  self.z)

  def test_wrong_prior(self):
    with self.assertRaisesRegex(ValueError,
                                r'z_rex: expected a prior of shape '
                                r'\(1, 256\), got \(1, 192\)'):
      self.g.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                  jnp.zeros((1, 192)), self.z)

  def test_nchw_input_is_rejected(self):
    with self.assertRaisesRegex(ValueError, 'NHWC'):
      DecomNet().init(jax.random.key(0), jnp.zeros((1, 3, 16, 16)))

  def test_encoder_channel_mismatch(self):
    with self.assertRaisesRegex(ValueError, 'expects 96 unshuffled'):
      PriorEncoder(96).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))

  def test_unknown_model_and_variant(self):
    with self.assertRaisesRegex(ValueError, 'Unknown model'):
      Model('nope')
    with self.assertRaisesRegex(ValueError, 'Unknown variant'):
      Model('teacher', 'huge')
    with self.assertRaisesRegex(ValueError, 'Unknown model options'):
      Model('teacher', dimm=3)


if __name__ == '__main__':
  absltest.main()
