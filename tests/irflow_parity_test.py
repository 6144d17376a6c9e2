"""IR-Flow's ConditionalUNet against the PyTorch reference, and its converter.

The recorded case ``../shared/parity/irflow/irflow_unet.npz`` (nf 16, depth
4, 40×40 inputs that the network reflect-pads to 48×48) is converted with
the project's converter and every output is compared at the per-output
tolerance of ``index.json`` under float32 matmul precision (conftest). The
spec's own implementation reached max|Δ| 5.1e-7.
"""

from __future__ import annotations

import math
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from restorect_jax.core import checkpoint_io
from restorect_jax import convert
from restorect_jax.models import Model
from restorect_jax.models.irflow_unet import ConditionalUNet
from restorect_jax.models.irflow_unet import UNet
import testutil

_GAIN_KEY = 'downs.0.2.fn.norm.g'


def _fixture() -> testutil.Fixture:
  return testutil.Fixture('irflow_unet', family='irflow')


def _net(fx: testutil.Fixture) -> ConditionalUNet:
  kw = fx.meta['kwargs']
  return ConditionalUNet(nf=kw['nf'], depth=kw['depth'], in_nc=kw['in_nc'],
                         out_nc=kw['out_nc'])


def _template(net, conditional: bool = True):
  x = jax.ShapeDtypeStruct((1, 16, 16, net.in_nc), np.float32)
  args = (x, jax.ShapeDtypeStruct((1,), np.int32)) if conditional else (x,)
  return jax.eval_shape(net.init, jax.random.key(0), *args)


def _np_time_mlp(sd, k: int, exact: bool) -> np.ndarray:
  """``time_mlp(k)`` in float64 NumPy, exact (erf) or tanh GELU."""
  w1, b1 = sd['time_mlp.1.weight'], sd['time_mlp.1.bias']
  half = w1.shape[1] // 2
  freqs = np.exp(np.arange(half) * -(math.log(10000.0) / (half - 1)))
  emb = np.concatenate([np.sin(k * freqs), np.cos(k * freqs)])
  h = w1.astype(np.float64) @ emb + b1
  if exact:
    h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
  else:
    h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) *
                               (h + 0.044715 * h ** 3)))
  return (sd['time_mlp.3.weight'] @ h + sd['time_mlp.3.bias'])[None]


class IRFlowUNetParityTest(absltest.TestCase):
  """Every recorded output of ``irflow_unet``."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.fx = _fixture()
    cls.net = _net(cls.fx)
    cls.variables = convert.torch_to_flax(cls.fx.sd, _template(cls.net))
    cls.apply = staticmethod(jax.jit(cls.net.apply))

  def check(self, name, got):
    testutil.assert_close(self, got, self.fx.get(name),
                          self.fx.tolerance(name), f'irflow_unet:{name}')

  def test_single_image_each_time(self):
    x, ks = self.fx.get('in/x'), self.fx.get('in/ks')
    self.assertEqual(x.shape, (1, 40, 40, 3))  # padded to 48 inside
    for i, k in enumerate(ks.tolist()):
      self.check(f'out/y_t{k}', self.apply(self.variables, x, ks[i:i + 1]))

  def test_batch_with_per_sample_times(self):
    self.check('out/y2', self.apply(self.variables, self.fx.get('in/x2'),
                                    self.fx.get('in/t2')))

  def test_time_embedding(self):
    temb = self.net.apply(self.variables, np.array([500]),
                          method='time_embedding')
    self.assertEqual(temb.shape, (1, 4 * self.net.nf))
    self.check('out/temb_t500', temb)

  def test_time_mlp_gelu_is_exact(self):
    """The recorded embedding separates erf from tanh GELU; ours is erf."""
    want, tol = self.fx.get('out/temb_t500'), self.fx.tolerance(
        'out/temb_t500')
    exact = _np_time_mlp(self.fx.sd, 500, exact=True)
    approx = _np_time_mlp(self.fx.sd, 500, exact=False)
    testutil.assert_close(self, exact, want, tol, 'numpy erf time_mlp')
    self.assertGreater(np.abs(approx - want).max(), 2 * tol)
    temb = self.net.apply(self.variables, np.array([500]),
                          method='time_embedding')
    self.assertGreater(np.abs(np.asarray(temb) - approx).max(), 2 * tol)


class IRFlowConverterTest(absltest.TestCase):
  """Layouts, strict key accounting, prefixes, round trips and the CLI."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.fx = _fixture()
    cls.net = _net(cls.fx)
    cls.template = _template(cls.net)
    cls.variables = convert.torch_to_flax(cls.fx.sd, cls.template)

  def test_keys_are_the_reference_state_dict(self):
    flat = convert.flatten_variables(self.template)
    self.assertEqual(set(flat), set(self.fx.meta['sd_keys']))
    self.assertLen(flat, 151)

  def test_layouts(self):
    p = self.variables['params']
    gain = self.fx.sd[_GAIN_KEY]  # (1, 16, 1, 1)
    self.assertEqual(gain.shape, (1, 16, 1, 1))
    np.testing.assert_array_equal(p['downs.0.2']['fn.norm']['g'],
                                  gain.reshape(16))
    np.testing.assert_array_equal(
        p['downs.0.3']['weight'],
        self.fx.sd['downs.0.3.weight'].transpose(2, 3, 1, 0))  # HWIO 4×4
    np.testing.assert_array_equal(p['time_mlp.1']['weight'],
                                  self.fx.sd['time_mlp.1.weight'].T)

  def test_round_trip_torch_flax_torch_is_bit_exact(self):
    back = convert.flax_to_torch(self.variables)
    self.assertEqual(set(back), set(self.fx.sd))
    for k, v in self.fx.sd.items():
      self.assertEqual(back[k].shape, v.shape, k)
      self.assertEqual(back[k].dtype, v.dtype, k)
      np.testing.assert_array_equal(back[k], v, err_msg=k)

  def test_round_trip_flax_torch_flax_is_bit_exact(self):
    again = convert.torch_to_flax(convert.flax_to_torch(self.variables),
                                  self.template)
    flat_a = jax.tree_util.tree_leaves_with_path(self.variables)
    flat_b = dict(jax.tree_util.tree_leaves_with_path(again))
    self.assertLen(flat_b, len(flat_a))
    for path, leaf in flat_a:
      np.testing.assert_array_equal(flat_b[path], leaf, err_msg=str(path))

  def test_misshaped_gain_is_listed(self):
    sd = dict(self.fx.sd)
    sd[_GAIN_KEY] = np.ones((1, 17, 1, 1), np.float32)
    with self.assertRaisesRegex(convert.ConversionError,
                                r'mis-shaped[\s\S]*downs\.0\.2\.fn\.norm\.g'):
      convert.torch_to_flax(sd, self.template)

  def test_misshaped_conv_is_listed(self):
    sd = dict(self.fx.sd)
    sd['downs.1.3.weight'] = np.zeros((64, 32, 3, 3), np.float32)
    with self.assertRaisesRegex(convert.ConversionError,
                                r'mis-shaped[\s\S]*downs\.1\.3\.weight'):
      convert.torch_to_flax(sd, self.template)

  def test_missing_key_is_listed(self):
    sd = {k: v for k, v in self.fx.sd.items() if k != 'ups.0.3.1.bias'}
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 missing[\s\S]*ups\.0\.3\.1\.bias'):
      convert.torch_to_flax(sd, self.template)

  def test_extra_key_is_listed(self):
    sd = dict(self.fx.sd, **{'ups.3.3.bias': np.zeros((16,), np.float32)})
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 unmapped[\s\S]*ups\.3\.3\.bias'):
      convert.torch_to_flax(sd, self.template)

  def test_module_prefix_is_stripped(self):
    prefixed = {f'module.{k}': v for k, v in self.fx.sd.items()}
    path = os.path.join(tempfile.mkdtemp(), 'ddp.npz')
    np.savez(path, **prefixed)
    sd = convert.load_state_dict(path)
    self.assertEqual(set(sd), set(self.fx.sd))
    out = convert.torch_to_flax(sd, self.template)
    np.testing.assert_array_equal(out['params']['final_conv']['bias'],
                                  self.fx.sd['final_conv.bias'])
    # Inside a BasicSR wrapper too; a partial prefix is left for the strict
    # check to report.
    self.assertEqual(set(convert.unwrap_state_dict({'params': prefixed})),
                     set(self.fx.sd))
    partial = dict(self.fx.sd, **{'module.extra': np.zeros(1, np.float32)})
    self.assertIn('module.extra', convert.unwrap_state_dict(partial))

  def test_time_free_unet_keys(self):
    base = UNet(nf=16, depth=4)
    template = _template(base, conditional=False)
    sd = {k: v for k, v in self.fx.sd.items()
          if '.mlp.' not in k and not k.startswith('time_mlp.')}
    self.assertLen(sd, 151 - 42)
    out = convert.torch_to_flax(sd, template, **convert.PRESETS['irflow_base'])
    self.assertEqual(set(convert.flatten_variables(out)), set(sd))
    with self.assertRaisesRegex(convert.ConversionError,
                                r'42 unmapped[\s\S]*time_mlp\.1\.weight'):
      convert.torch_to_flax(self.fx.sd, template)

  def test_template_for_registry_models(self):
    for name, n in (('irflow', 151), ('irflow_base', 109)):
      flat = convert.flatten_variables(convert.template_for(name, 'small'))
      self.assertLen(flat, n)
    self.assertEqual(
        convert.flatten_variables(convert.template_for('irflow', 'small')
                                  )['downs.0.2.fn.norm.g'][1].shape, (16,))
    flat = convert.flatten_variables(convert.template_for(
        'irflow', 'tiny', {'in_nc': 4}))
    self.assertEqual(flat['init_conv.weight'][1].shape, (7, 7, 4, 4))
    self.assertIn('irflow', convert.PRESETS)
    self.assertIn('irflow_base', convert.PRESETS)
    self.assertIsInstance(Model('irflow', 'small'), ConditionalUNet)

  def test_cli_round_trip(self):
    d = tempfile.mkdtemp()
    src = os.path.join(d, 'irflow_small.npz')
    np.savez(src, **{f'module.{k}': v for k, v in self.fx.sd.items()})
    flax_dir, back = os.path.join(d, 'flax'), os.path.join(d, 'back.npz')
    self.assertEqual(convert.run(['--model', 'irflow', '--variant', 'small',
                                  '--input', src, '--output', flax_dir]), 0)
    self.assertEqual(checkpoint_io.load_metadata(flax_dir)['model'], 'irflow')
    loaded = checkpoint_io.load_variables(flax_dir)
    np.testing.assert_array_equal(loaded['params']['mid_attn']['fn.norm']['g'],
                                  self.fx.sd['mid_attn.fn.norm.g'].reshape(-1))
    self.assertEqual(convert.run(['--model', 'irflow', '--input', flax_dir,
                                  '--output', back]), 0)
    got = convert.load_state_dict(back)
    self.assertEqual(set(got), set(self.fx.sd))
    for k, v in self.fx.sd.items():
      np.testing.assert_array_equal(got[k], v, err_msg=k)
    # The wrong variant is refused with the listing.
    with self.assertRaisesRegex(convert.ConversionError, 'mis-shaped'):
      convert.run(['--model', 'irflow', '--variant', 'tiny', '--input', src,
                   '--output', os.path.join(d, 'wrong')])


if __name__ == '__main__':
  absltest.main()
