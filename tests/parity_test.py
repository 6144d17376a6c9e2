"""Parity with the PyTorch reference: converted weights, same outputs.

Every case in ``../shared/parity/restorect`` (and the real pretrained
DecomNets in ``../shared/parity/real``) is converted with the project's
converter, run on the recorded inputs and injected noise, and compared with
the recorded outputs at the per-output tolerance of ``index.json``
(max|Δ| ≤ 1e-5 scaled), under float32 matmul precision (conftest).
"""

from __future__ import annotations

import json

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import convert
from restorect_jax import inference
from restorect_jax.models import DecomNet
from restorect_jax.models import Interface
from restorect_jax.models import PriorEncoder
from restorect_jax.models import RetinexPriorEncoder
from restorect_jax.models import RGFormer
from restorect_jax.models import Teacher
from restorect_jax.models import VelocityPredictor
from restorect_jax.models import layers
from restorect_jax.models import rgformer
import testutil

TINY = dict(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
            heads=(1, 2, 4, 8))


def _convert(module, sd, *args, **kw):
  template = jax.eval_shape(module.init, jax.random.key(0), *args)
  return convert.torch_to_flax(sd, template, **kw)


class ParityTest(parameterized.TestCase):

  def check(self, fx, name, got):
    testutil.assert_close(self, got, fx.get(name), fx.tolerance(name),
                          f'{fx.meta["case"]}:{name}')

  def test_decomnet(self):
    fx = testutil.Fixture('decomnet')
    img = fx.get('in/img')
    v = _convert(DecomNet(), fx.sd, img)
    r, l = DecomNet().apply(v, img)
    self.check(fx, 'out/R', r)
    self.check(fx, 'out/L', l)
    self.check(fx, 'out/raw', jnp.concatenate([r, l], -1))

  @parameterized.parameters('pe_teacher', 'pe_student')
  def test_pe(self, case):
    fx = testutil.Fixture(case)
    kw = fx.meta['kwargs']
    teacher = case == 'pe_teacher'
    args = (fx.get('in/lq'), fx.get('in/gt')) if teacher else (
        fx.get('in/lq'),)
    mk = lambda norm: PriorEncoder(kw['input_channels'], kw['n_feats'],
                                   kw['n_encoder_res'], normalize=norm)
    v = _convert(mk(not teacher), fx.sd, *args)
    z, feat = mk(not teacher).apply(v, *args, return_features=True)
    self.check(fx, 'out/z', z)
    self.check(fx, 'out/e_feat', feat)
    if not teacher:
      self.check(fx, 'out/z_prenorm', mk(False).apply(v, *args))

  @parameterized.parameters('rpe_teacher', 'rpe_student')
  def test_rpe(self, case):
    fx = testutil.Fixture(case)
    kw = fx.meta['kwargs']
    teacher = case == 'rpe_teacher'
    args = (fx.get('in/rex_lq'), fx.get('in/rex_gt')) if teacher else (
        fx.get('in/rex_lq'),)
    mk = lambda norm: RetinexPriorEncoder(
        kw['input_channels'], kw['n_feats'], kw['n_encoder_res'],
        normalize=norm)
    v = _convert(mk(not teacher), fx.sd, *args)
    z = mk(not teacher).apply(v, *args)
    self.check(fx, 'out/z', z)
    if teacher:
      self.check(fx, 'out/z_R', z[:, :192])
      self.check(fx, 'out/z_I', z[:, 192:])
    else:
      self.check(fx, 'out/z_prenorm', mk(False).apply(v, *args))

  @parameterized.parameters(
      'block_rransformer_c32_h2_scln', 'block_rransformer_c64_h4_scln',
      'block_transformer_c32_h1_scln', 'block_rransformer_c32_h2_withbias',
      'block_rransformer_c32_h2_scln_clamp')
  def test_block(self, case):
    fx = testutil.Fixture(case)
    kw = fx.meta['kwargs']
    block = rgformer.TransformerBlock(
        kw['dim'], kw['num_heads'], kw['ffn_expansion_factor'],
        kw['LayerNorm_type'], retinex=fx.meta['module'] == 'RransformerBlock')
    x, z = fx.get('in/x'), fx.get('in/z')
    v = _convert(block, fx.sd, x, z)
    self.check(fx, 'out/y', block.apply(v, x, z))
    norm = layers.Norm(kw['LayerNorm_type'])
    self.check(fx, 'out/norm1',
               norm.apply({'params': v['params']['norm1']}, x))

  def test_rgformer(self):
    fx = testutil.Fixture('rgformer_s1')
    g = RGFormer(**TINY)
    args = (fx.get('in/lq'), fx.get('in/z_rex'), fx.get('in/z_img'))
    v = _convert(g, fx.sd, *args)
    out, decom_img, decom_mat = g.apply(v, *args)
    self.check(fx, 'out/img', out)
    self.check(fx, 'out/decom_img', decom_img)
    self.check(fx, 'out/decom_mat', decom_mat)

  def test_velocity(self):
    fx = testutil.Fixture('velocity')
    net = VelocityPredictor()
    args = (fx.get('in/x'), fx.get('in/t'), fx.get('in/c'))
    v = _convert(net, fx.sd, *args)
    self.check(fx, 'out/v', net.apply(v, *args))

  def test_teacher(self):
    fx = testutil.Fixture('teacher_s1')
    net = Teacher(**TINY, n_encoder_res=2)
    rex = lambda r, i: jnp.concatenate([fx.get(r), fx.get(i)], -1)
    args = (fx.get('in/lq'), fx.get('in/gt'), rex('in/r_lq', 'in/i_lq'),
            rex('in/r_gt', 'in/i_gt'))
    v = _convert(net, fx.sd, *args)
    res = net.apply(v, *args)
    self.check(fx, 'out/img', res['out'])
    for name in ('decom_img', 'decom_mat', 'z_rex', 'z_img'):
      self.check(fx, f'out/{name}', res[name])

  def test_interface_sampler(self):
    fx = testutil.Fixture('sampler_interface')
    net = Interface(**TINY, n_encoder_res=2)
    lq, rex = fx.get('in/lq'), fx.get('in/rex_lq')
    nr, ni = fx.get('noise/rex'), fx.get('noise/img')
    v = _convert(net, fx.sd, lq, rex, nr, ni)
    c_rex, c_img = net.apply(v, lq, rex, method=net.conditions)
    self.check(fx, 'out/c_rex', c_rex)
    self.check(fx, 'out/c_img', c_img)
    for steps in (4, 5):
      z_rex, z_img = net.apply(v, lq, rex, nr, ni, steps,
                               method=net.sample_priors)
      self.check(fx, f'out/z_rex_steps{steps}', z_rex)
      self.check(fx, f'out/z_img_steps{steps}', z_img)
      self.check(fx, f'out/img_steps{steps}',
                 net.apply(v, lq, rex, nr, ni, steps))
    # Odd size: reflect-pad to a multiple of 8, run, crop.
    padded, _ = layers.reflect_pad_to_multiple(fx.get('in/lq_odd'), 8)
    self.check(fx, 'out/lq_odd_padded', padded)
    args = (padded, fx.get('in/rex_lq_odd'), fx.get('noise/rex_odd'),
            fx.get('noise/img_odd'))
    z_rex, z_img = net.apply(v, *args, 5, method=net.sample_priors)
    self.check(fx, 'out/z_rex_odd_steps5', z_rex)
    self.check(fx, 'out/z_img_odd_steps5', z_img)
    full = net.apply(v, *args, 5)
    self.check(fx, 'out/img_odd_padded_steps5', full)
    self.check(fx, 'out/img_odd_steps5', full[:, :36, :44])

  def test_restore_end_to_end(self):
    """Public restore(): pad → Dl → priors → G → crop, against the records."""
    fx = testutil.Fixture('sampler_interface')
    dfx = testutil.Fixture('decomnet')
    net = Interface(**TINY, n_encoder_res=2)
    lq_odd = fx.get('in/lq_odd')
    template = jax.eval_shape(net.init, jax.random.key(0), fx.get('in/lq'),
                              fx.get('in/rex_lq'), fx.get('noise/rex'),
                              fx.get('noise/img'))
    params = {
        'interface': convert.torch_to_flax(fx.sd, template),
        'decom_low': _convert(DecomNet(), dfx.sd, lq_odd),
    }
    # The recorded rex_lq_odd is Decom(lq_odd_padded) with these weights.
    padded, _ = layers.reflect_pad_to_multiple(lq_odd, 8)
    r, l = DecomNet().apply(params['decom_low'], padded)
    # Tolerance: the DecomNet fixture's own (out/R; out/L is tighter).
    testutil.assert_close(self, jnp.concatenate([r, l], -1),
                          fx.get('in/rex_lq_odd'), dfx.tolerance('out/R'),
                          'rex_lq_odd')
    out = inference.restore_with_noise(
        params, lq_odd, fx.get('noise/rex_odd'), fx.get('noise/img_odd'),
        rf_steps=5, model=net, clip=False)
    self.check(fx, 'out/img_odd_steps5', out)
    clipped = inference.restore_with_noise(
        params, lq_odd, fx.get('noise/rex_odd'), fx.get('noise/img_odd'),
        rf_steps=5, model=net)
    np.testing.assert_array_equal(clipped, jnp.clip(out, 0, 1))


class RealDecomNetTest(parameterized.TestCase):
  """The published Reti-Diff DecomNets on real photographs."""

  @parameterized.parameters('decomnet_low_astronaut', 'decomnet_low_coffee',
                            'decomnet_high_astronaut', 'decomnet_high_coffee')
  def test_real(self, case):
    shared = testutil.shared_dir()
    with open(shared / 'parity' / 'real' / 'index.json') as f:
      meta = {e['case']: e for e in json.load(f)}[case]
    with np.load(shared / 'parity' / 'real' / f'{case}.npz') as z:
      data = {k: z[k] for k in z.files}
    weights = shared / 'weights' / 'retidiff' / meta['weights'].split('/')[-1]
    sd = convert.load_state_dict(str(weights.with_suffix('.npz')))
    for k, v in sd.items():  # the .npz twin equals the recorded weights
      np.testing.assert_array_equal(v, data[f'sd/{k}'])
    img = testutil.to_nhwc(data['in/img'])
    template = DecomNet().init(jax.random.key(0), img)
    v = convert.torch_to_flax(sd, template, **convert.PRESETS['decomnet'])
    r, l = DecomNet().apply(v, img)
    tol = meta['tolerance']
    for name, got in (('R', r), ('L', l)):
      want = testutil.to_nhwc(data[f'out/{name}'])
      testutil.assert_close(self, got, want, tol * max(1, np.abs(want).max()),
                            f'{case}:{name}')


class RoundTripTest(parameterized.TestCase):
  """PyTorch → Flax → PyTorch reproduces every key and value bit-exactly."""

  @parameterized.parameters(
      ('decomnet', lambda: (DecomNet(), 'img')),
      ('velocity', lambda: (VelocityPredictor(), None)),
      ('rgformer_s1', lambda: (RGFormer(**TINY), None)),
      ('teacher_s1', lambda: (Teacher(**TINY, n_encoder_res=2), None)),
      ('sampler_interface', lambda: (Interface(**TINY, n_encoder_res=2),
                                     None)),
      ('rpe_teacher', lambda: (RetinexPriorEncoder(128, n_encoder_res=2,
                                                   normalize=False), None)),
      ('block_rransformer_c32_h2_withbias', lambda: (
          rgformer.TransformerBlock(32, 2, layer_norm_type='WithBias'), None)),
  )
  def test_round_trip(self, case, build):
    fx = testutil.Fixture(case)
    module, _ = build()
    args = {
        'decomnet': lambda: (fx.get('in/img'),),
        'velocity': lambda: (fx.get('in/x'), fx.get('in/t'), fx.get('in/c')),
        'rgformer_s1': lambda: (fx.get('in/lq'), fx.get('in/z_rex'),
                                fx.get('in/z_img')),
        'teacher_s1': lambda: (fx.get('in/lq'), fx.get('in/gt'),
                               np.zeros((1, 32, 32, 4), np.float32),
                               np.zeros((1, 32, 32, 4), np.float32)),
        'sampler_interface': lambda: (fx.get('in/lq'), fx.get('in/rex_lq'),
                                      fx.get('noise/rex'),
                                      fx.get('noise/img')),
        'rpe_teacher': lambda: (fx.get('in/rex_lq'), fx.get('in/rex_gt')),
        'block_rransformer_c32_h2_withbias': lambda: (fx.get('in/x'),
                                                      fx.get('in/z')),
    }[case]()
    flax_vars = _convert(module, fx.sd, *args)
    back = convert.flax_to_torch(flax_vars)
    self.assertEqual(sorted(back), sorted(fx.sd))
    for k, v in fx.sd.items():
      self.assertEqual(back[k].dtype, v.dtype, k)
      np.testing.assert_array_equal(back[k], v, err_msg=k)


if __name__ == '__main__':
  absltest.main()
