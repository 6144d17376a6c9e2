"""IR-Flow's U-Nets: sizes, time input, padding, init and bad inputs."""

from __future__ import annotations

import math

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import convert
from restorect_jax.models import IRFLOW_VARIANTS
from restorect_jax.models import Model
from restorect_jax.models import init_variables
from restorect_jax.models import irflow_unet
from restorect_jax.models.irflow_unet import ConditionalUNet
from restorect_jax.models.irflow_unet import UNet
import testutil

S = jax.ShapeDtypeStruct
F32 = jnp.float32
K1 = S((1,), jnp.int32)


def _params(module, *args):
  return jax.eval_shape(module.init, jax.random.key(0), *args)['params']


def _count(tree) -> tuple[int, int]:
  leaves = jax.tree.leaves(tree)
  return sum(int(np.prod(x.shape)) for x in leaves), len(leaves)


class ParamCountTest(absltest.TestCase):
  """Sizes of the default networks equal the reference's (spec §4)."""

  def test_conditional_unet_default(self):
    params = _params(Model('irflow'), S((1, 32, 32, 3), F32), K1)
    self.assertEqual(_count(params), (137_138_115, 151))
    # Per-block breakdown, spec §4.1.
    blocks = {
        'init_conv': 9_408, 'time_mlp': 82_432, 'downs.0': 377_408,
        'downs.1': 1_311_872, 'downs.2': 4_851_968, 'downs.3': 14_945_792,
        'mid_block1': 19_400_704, 'mid_attn': 527_360,
        'mid_block2': 19_400_704, 'ups.0': 56_630_784, 'ups.1': 14_552_832,
        'ups.2': 3_835_776, 'ups.3': 1_057_664, 'final_res_block': 151_680,
        'final_conv': 1_731,
    }
    got = {}
    for name, sub in params.items():
      block = '.'.join(name.split('.')[:2]) if name.startswith(
          ('downs.', 'ups.')) else name.split('.')[0]
      got[block] = got.get(block, 0) + _count(sub)[0]
    self.assertEqual(got, blocks)
    self.assertEqual(sum(blocks.values()), 137_138_115)

  def test_unet_default(self):
    params = _params(Model('irflow_base'), S((1, 32, 32, 3), F32))
    self.assertEqual(_count(params), (133_009_475, 109))
    self.assertNotIn('time_mlp.1', params)
    self.assertNotIn('mlp.1', params['final_res_block'])

  def test_key_shapes_from_the_spec_table(self):
    params = _params(Model('irflow'), S((1, 32, 32, 3), F32), K1)
    self.assertEqual(params['downs.3.2']['fn.fn']['to_qkv']['weight'].shape,
                     (1, 1, 512, 384))
    self.assertEqual(params['downs.3.3']['weight'].shape, (3, 3, 512, 1024))
    self.assertNotIn('bias', params['downs.3.3'])
    self.assertEqual(params['downs.2.3']['weight'].shape, (4, 4, 256, 512))
    self.assertEqual(params['ups.0.0']['block1.proj']['weight'].shape,
                     (3, 3, 1536, 1024))
    self.assertEqual(params['ups.0.3.1']['bias'].shape, (512,))
    self.assertNotIn('bias', params['ups.3.3'])
    self.assertEqual(params['mid_attn']['fn.fn']['to_out.1']['g'].shape,
                     (1024,))

  def test_registry_variants(self):
    self.assertEqual(IRFLOW_VARIANTS['default'], dict(nf=64, depth=4))
    x = S((1, 16, 16, 3), F32)
    self.assertEqual(_count(_params(Model('irflow', 'small'), x, K1))[0],
                     8_953_587)
    self.assertEqual(_count(_params(Model('irflow_base', 'tiny'), x))[0],
                     638_135)
    m = Model('irflow', 'tiny', out_nc=6)
    self.assertEqual((m.nf, m.depth, m.out_nc), (4, 4, 6))
    self.assertIsInstance(Model('irflow_base', 'small'), UNet)
    with self.assertRaisesRegex(ValueError, r'Unknown model options.*bogus'):
      Model('irflow', bogus=1)
    with self.assertRaisesRegex(ValueError, 'conditional'):
      Model('irflow_base', conditional=True)  # a class constant, not option
    with self.assertRaisesRegex(ValueError, 'Unknown IR-Flow variant'):
      Model('irflow', 'demo')
    with self.assertRaisesRegex(ValueError, 'irflow'):
      Model('irflow_typo')
    # The RestoRect models are unchanged.
    self.assertEqual(Model('teacher', 'tiny').dim, 16)


class TimeEmbeddingTest(absltest.TestCase):

  def test_sinusoid_check_values(self):
    """Spec §4.1: k = 1, dim 64 (half 32, denominator 31, sin then cos)."""
    emb = np.asarray(irflow_unet.sinusoidal_embedding(jnp.array([1]), 64))[0]
    np.testing.assert_allclose(emb[0:3], [0.8415, 0.6765, 0.5244], atol=1e-4)
    np.testing.assert_allclose(emb[32:35], [0.5403, 0.7365, 0.8515],
                               atol=1e-4)
    k = 1000
    freqs = np.exp(-np.arange(32) * math.log(10000) / 31)
    np.testing.assert_allclose(
        irflow_unet.sinusoidal_embedding(jnp.array([k, 0]), 64),
        np.stack([np.r_[np.sin(k * freqs), np.cos(k * freqs)],
                  np.r_[np.zeros(32), np.ones(32)]]), atol=2e-4)

  def test_time_embedding_shape(self):
    net = ConditionalUNet(nf=4)
    v = jax.eval_shape(net.init, jax.random.key(0), S((1, 16, 16, 3), F32),
                       K1)
    out = jax.eval_shape(lambda v, k: net.apply(v, k,
                                                method='time_embedding'),
                         v, S((5,), jnp.int32))
    self.assertEqual(out.shape, (5, 16))


class InitTest(absltest.TestCase):

  def test_pytorch_default_init(self):
    """U(±1/sqrt(fan_in)) weights and biases, gains 1 (depth 2: every kind
    of layer at a small compile)."""
    net = ConditionalUNet(nf=4, depth=2)
    variables = init_variables(net, 0, np.zeros((1, 8, 8, 3), np.float32),
                               np.zeros((1,), np.int32))
    flat = convert.flatten_variables(variables)
    self.assertIn('downs.0.3.bias', flat)  # strided conv
    self.assertIn('ups.0.3.1.bias', flat)  # up-sampling conv
    for key, (_, leaf) in flat.items():
      leaf = np.asarray(leaf)
      if key.endswith('.g'):
        np.testing.assert_array_equal(leaf, np.ones_like(leaf), key)
        continue
      w = leaf if key.endswith('.weight') else np.asarray(
          flat[key[:-len('bias')] + 'weight'][1])
      bound = 1 / math.sqrt(int(np.prod(w.shape[:-1])))
      self.assertLessEqual(np.abs(leaf).max(), bound * (1 + 1e-6), key)
      if leaf.size >= 64:  # spread over the whole interval, not lecun/zeros
        self.assertGreater(np.abs(leaf).max(), 0.8 * bound, key)
        self.assertGreater(np.abs(leaf).mean(), 0.3 * bound, key)


class ForwardTest(absltest.TestCase):
  """Runs of the nf 4 network with the ``irflow_euler`` fixture weights."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    fx = testutil.Fixture('irflow_euler', family='irflow')
    cls.net = ConditionalUNet(nf=4, depth=4)
    template = jax.eval_shape(cls.net.init, jax.random.key(0),
                              S((1, 16, 16, 3), F32), K1)
    cls.variables = convert.torch_to_flax(fx.sd, template)
    cls.apply = staticmethod(jax.jit(cls.net.apply))
    rng = np.random.default_rng(0)
    cls.x2 = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)

  def test_time_normalisation(self):
    as_array = irflow_unet._time_array  # pylint: disable=protected-access
    for k in (7, np.int32(7), jnp.array(7), [7], np.array([7])):
      np.testing.assert_array_equal(as_array(k, 2), [7])
    self.assertEqual(as_array([1, 2], 2).shape, (2,))

  def test_times_per_sample_and_broadcast(self):
    """(B,) times act per sample; (1,) broadcasts over B."""
    both = self.apply(self.variables, self.x2, np.array([10, 900]))
    for i, k in enumerate((10, 900)):
      one = self.apply(self.variables, self.x2, np.array([k]))
      np.testing.assert_allclose(both[i], one[i], atol=1e-6)
    self.assertGreater(float(jnp.abs(both - one).max()), 1e-4)

  def test_odd_size_pads_and_crops(self):
    x = np.random.default_rng(1).uniform(size=(1, 37, 50, 3)).astype(
        np.float32)
    out = self.apply(self.variables, x, 500)  # python int time
    self.assertEqual(out.shape, (1, 37, 50, 3))
    # Reflect (edge not repeated) to multiples of 16: 48×64, run, crop.
    padded = np.pad(x, ((0, 0), (0, 11), (0, 14), (0, 0)), mode='reflect')
    want = self.apply(self.variables, padded, np.array([500]))[:, :37, :50]
    testutil.assert_close(self, out, want, 1e-6, 'padded-then-cropped')
    # The padding mode matters at the border: zero padding differs.
    zero = np.pad(x, ((0, 0), (0, 11), (0, 14), (0, 0)))
    other = self.apply(self.variables, zero, np.array([500]))[:, :37, :50]
    self.assertGreater(float(jnp.abs(other - want).max()), 1e-4)

  def test_unet_runs(self):
    """The time-free twin on the same weights minus every time MLP."""
    params = {k: {n: w for n, w in v.items() if n != 'mlp.1'}
              for k, v in self.variables['params'].items()
              if not k.startswith('time_mlp.')}
    out = jax.jit(UNet(nf=4).apply)({'params': params}, self.x2[:, :13, :15])
    self.assertEqual(out.shape, (2, 13, 15, 3))
    self.assertTrue(bool(jnp.isfinite(out).all()))

  def test_bfloat16_compute(self):
    net = ConditionalUNet(nf=4, dtype=jnp.bfloat16)
    out = jax.eval_shape(net.apply, self.variables, S((2, 16, 16, 3), F32),
                         K1)
    self.assertEqual((out.shape, out.dtype), ((2, 16, 16, 3), jnp.bfloat16))


class BadInputTest(parameterized.TestCase):

  def _shape(self, net, x, *k):
    v = jax.eval_shape(net.init, jax.random.key(0), S((1, 16, 16, 3), F32),
                       *((K1,) if k else ()))
    return jax.eval_shape(net.apply, v, x, *k)

  @parameterized.parameters(((1, 16, 16, 4),), ((16, 16, 3),),
                            ((1, 3, 16, 16),))
  def test_wrong_image_shape(self, shape):
    with self.assertRaisesRegex(ValueError, r'ConditionalUNet.*NHWC'):
      self._shape(ConditionalUNet(nf=4), S(shape, F32), K1)
    with self.assertRaisesRegex(ValueError, r'UNet.*NHWC'):
      self._shape(UNet(nf=4), S(shape, F32))

  @parameterized.parameters(((3,),), ((2, 1),))
  def test_wrong_time_shape(self, shape):
    with self.assertRaisesRegex(ValueError, r'time k'):
      self._shape(ConditionalUNet(nf=4), S((2, 16, 16, 3), F32),
                  S(shape, jnp.int32))

  def test_image_too_small_to_reflect_pad(self):
    with self.assertRaisesRegex(ValueError, 'too small'):
      self._shape(ConditionalUNet(nf=4), S((1, 5, 16, 3), F32), K1)

  @parameterized.parameters(dict(nf=3), dict(nf=2), dict(depth=0))
  def test_bad_config(self, **kw):
    with self.assertRaisesRegex(ValueError, 'nf|depth'):
      jax.eval_shape(ConditionalUNet(**kw).init, jax.random.key(0),
                     S((1, 16, 16, 3), F32), K1)


if __name__ == '__main__':
  absltest.main()
