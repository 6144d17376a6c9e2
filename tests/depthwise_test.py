"""Formulation options: the depthwise 3×3 conv and IR-Flow's attention.

``layers.depthwise_conv3x3`` has three concrete formulations (``shifted``,
``shifted_vjp``, ``lax``) and ``auto``; IR-Flow's ``LinearAttention`` two
(``folded``, ``reference``). Each must compute the same function with the
same gradients and the same parameter tree, and pass the PyTorch-reference
parity cases (``../shared/parity``) at their recorded tolerances — the
default formulations run in ``parity_test.py`` / ``irflow_parity_test.py``,
every formulation here.
"""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import convert
from restorect_jax.models import Interface
from restorect_jax.models import Model
from restorect_jax.models import RGFormer
from restorect_jax.models import Teacher
from restorect_jax.models import irflow_unet
from restorect_jax.models import layers
from restorect_jax.models import rgformer
import testutil

S = jax.ShapeDtypeStruct
F32 = jnp.float32
CONCRETE = ('shifted', 'shifted_vjp', 'lax')
# The parity fixtures' tiny RestoRect (tests/parity_test.py: TINY).
TINY = dict(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
            heads=(1, 2, 4, 8))
# Odd sizes, a 1-pixel side, 1 to 16 channels.
SHAPES = ((2, 7, 5, 3), (1, 9, 11, 16), (3, 5, 13, 1), (2, 1, 6, 5))
# Same sums in another order: max|Δ| measured ≤ 2.2e-7 · max|ref|.
REL_TOL = 1e-6


def _random(shape, seed):
  return np.random.RandomState(seed).standard_normal(shape).astype(
      np.float32)


def _conv_vjp(formulation):
  """Jitted (y, dx, dw) of ``depthwise_conv3x3`` for a cotangent ``g``."""

  @jax.jit
  def f(x, w, g):
    y, vjp = jax.vjp(
        lambda x, w: layers.depthwise_conv3x3(x, w, formulation), x, w)
    return (y, *vjp(g))
  return f


def _np_depthwise(x, w):
  """Float64 loop reference: y[:, p] = Σ_ij xpad[:, p + (i, j)] w[i, j]."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  _, h, wd, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = np.zeros_like(x)
  for i in range(3):
    for j in range(3):
      for p in range(h):
        for q in range(wd):
          y[:, p, q, :] += xp[:, p + i, q + j, :] * w[i, j]
  return y


def _assert_rel_close(testcase, got, want, what, rel=REL_TOL):
  scale = max(1.0, float(np.abs(np.asarray(want)).max()))
  testutil.assert_close(testcase, got, want, rel * scale, what)


def _layout(variables) -> dict[str, tuple]:
  """PyTorch key ('.'-joined Flax path) → (Flax path, shape, dtype)."""
  return {key: (path, leaf.shape, leaf.dtype) for key, (path, leaf)
          in convert.flatten_variables(variables).items()}


def _convert(module, sd, *args):
  template = jax.eval_shape(module.init, jax.random.key(0), *args)
  return convert.torch_to_flax(sd, template)


class DepthwiseFunctionTest(parameterized.TestCase):

  @parameterized.product(shape=SHAPES, formulation=('shifted_vjp', 'lax'))
  def test_gradients_equal_autodiff_of_shifted(self, shape, formulation):
    x, g = _random(shape, 0), _random(shape, 1)
    w = _random((3, 3, shape[-1]), 2)
    want = _conv_vjp('shifted')(x, w, g)
    got = _conv_vjp(formulation)(x, w, g)
    for name, a, b in zip(('y', 'dx', 'dw'), got, want):
      self.assertEqual(a.dtype, b.dtype, name)
      _assert_rel_close(self, a, b, f'{formulation} {shape} {name}')

  @parameterized.parameters(*CONCRETE)
  def test_forward_and_adjoint(self, formulation):
    # y is bilinear in (x, w), so its VJP is the transpose of each linear
    # map: <g, y(x', w)> = <dx, x'> and <g, y(x, w')> = <dw, w'> (the
    # dot-product test), checked against a float64 loop, not autodiff.
    shape = (2, 7, 5, 6)
    x, g, x2 = _random(shape, 3), _random(shape, 4), _random(shape, 5)
    w, w2 = _random((3, 3, 6), 6), _random((3, 3, 6), 7)
    y, dx, dw = _conv_vjp(formulation)(x, w, g)
    _assert_rel_close(self, y, _np_depthwise(x, w), 'y')
    g64 = g.astype(np.float64)
    for what, lhs, rhs in (
        ('dx', np.sum(g64 * _np_depthwise(x2, w)), np.sum(dx * x2)),
        ('dw', np.sum(g64 * _np_depthwise(x, w2)), np.sum(dw * w2))):
      self.assertLessEqual(abs(lhs - rhs), 1e-5 * max(1.0, abs(lhs)), what)

  def test_auto_resolves_per_backend(self):
    self.assertEqual(layers.resolve_depthwise('auto', 'cpu'), 'shifted_vjp')
    self.assertEqual(layers.resolve_depthwise('auto', 'gpu'), 'shifted')
    self.assertEqual(layers.resolve_depthwise('auto', 'tpu'), 'shifted')
    for f in CONCRETE:
      self.assertEqual(layers.resolve_depthwise(f, 'gpu'), f)
    # At trace time on this (CPU) backend: the custom VJP is in the program.
    x, w = np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2), np.float32)
    trace = lambda f: str(jax.make_jaxpr(
        lambda x, w: layers.depthwise_conv3x3(x, w, f))(x, w))
    self.assertEqual(jax.default_backend(), 'cpu')
    self.assertIn('custom_vjp_call', trace('auto'))
    self.assertNotIn('custom_vjp_call', trace('shifted'))
    self.assertIn('conv_general_dilated', trace('lax'))

  def test_bad_values(self):
    x, w = np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2), np.float32)
    listing = r"one of \('auto', 'shifted', 'shifted_vjp', 'lax'\), got "
    with self.assertRaisesRegex(ValueError, listing + "'custom_vjp'"):
      layers.depthwise_conv3x3(x, w, 'custom_vjp')
    with self.assertRaisesRegex(ValueError, listing + "'shift'"):
      Model('teacher', 'tiny', depthwise='shift')
    lq, z = jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 256))
    with self.assertRaisesRegex(ValueError, listing + "'Lax'"):
      RGFormer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
               depthwise='Lax').init(jax.random.key(0), lq, z, z)
    with self.assertRaisesRegex(ValueError, listing + "''"):
      rgformer.TransformerBlock(8, 1, depthwise='').init(
          jax.random.key(0), jnp.zeros((1, 8, 8, 8)), z)
    listing = r"attention must be one of \('folded', 'reference'\), got "
    with self.assertRaisesRegex(ValueError, listing + "'linear'"):
      Model('irflow', 'tiny', attention='linear')
    with self.assertRaisesRegex(ValueError, listing + "'fold'"):
      irflow_unet.ConditionalUNet(nf=4, attention='fold').init(
          jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1,)))


class ModelFormulationTest(parameterized.TestCase):
  """Same parameter tree and gradients for every formulation."""

  def test_same_parameter_tree(self):
    # The converter relies on the Flax paths; outputs per formulation are
    # compared with the reference in FormulationParityTest.
    lq, rex = S((1, 16, 16, 3), F32), S((1, 16, 16, 4), F32)
    z, k = S((1, 256), F32), S((1,), jnp.int32)
    cases = (('teacher', 'depthwise', (lq, lq, rex, rex)),
             ('interface', 'depthwise', (lq, rex, z, z)),
             ('student', 'depthwise', (lq, rex, z, z)),
             ('irflow', 'attention', (lq, k)))
    for name, option, args in cases:
      values = (layers.DEPTHWISE_FORMULATIONS if option == 'depthwise' else
                irflow_unet.ATTENTION_FORMULATIONS)
      layouts = [_layout(jax.eval_shape(
          Model(name, 'tiny', **{option: value}).init, jax.random.key(0),
          *args)) for value in values]
      for value, layout in zip(values[1:], layouts[1:]):
        self.assertEqual(layout, layouts[0], f'{name} {option}={value}')

  @parameterized.parameters(True, False)
  def test_block_gradients(self, retinex):
    # Gradients of a whole block (Rttention or plain attention, and the
    # FFN) for the parameters and the input: the hand-written VJP vs
    # autodiff (both vs 'lax': DepthwiseFunctionTest).
    x = jax.random.normal(jax.random.key(0), (2, 9, 7, 16))
    z = jax.random.normal(jax.random.key(1), (2, 256))
    ct = jax.random.normal(jax.random.key(2), x.shape)
    block = lambda f: rgformer.TransformerBlock(16, 2, retinex=retinex,
                                                depthwise=f)
    params = block('auto').init(jax.random.key(3), x, z)

    def run(f):
      fwd = lambda p, x: block(f).apply(p, x, z)
      return jax.jit(lambda p, x: jax.vjp(fwd, p, x)[1](ct))(params, x)

    got, want = run('shifted_vjp'), run('shifted')
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got),
                            jax.tree.leaves(want)):
      _assert_rel_close(self, a, b, jax.tree_util.keystr(path), rel=1e-5)

  def test_folded_attention_gradients(self):
    # Folded vs reference linear attention: output and the gradients for
    # the parameters and the input (the IR-Flow train step differentiates
    # it); inputs scaled up to spread the softmaxes.
    x = jax.random.normal(jax.random.key(2), (2, 5, 7, 8)) * 3.0
    net = lambda f: irflow_unet.LinearAttention(8, f)
    params = net('reference').init(jax.random.key(0), x)
    ct = jax.random.normal(jax.random.key(3), (2, 5, 7, 8))

    def run(f):
      y, vjp = jax.vjp(lambda p, x: net(f).apply(p, x), params, x)
      return y, vjp(ct)

    want_y, want_g = jax.jit(lambda: run('reference'))()
    got_y, got_g = jax.jit(lambda: run('folded'))()
    _assert_rel_close(self, got_y, want_y, 'y', rel=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got_g),
                            jax.tree.leaves(want_g)):
      _assert_rel_close(self, a, b, jax.tree_util.keystr(path), rel=1e-5)


class FormulationParityTest(parameterized.TestCase):
  """The reference parity cases, for each formulation."""

  def check(self, fx, name, got):
    testutil.assert_close(self, got, fx.get(name), fx.tolerance(name),
                          f'{fx.meta["case"]}:{name}')

  @parameterized.product(
      case=('block_rransformer_c32_h2_scln', 'block_transformer_c32_h1_scln',
            'block_rransformer_c32_h2_withbias'),
      formulation=CONCRETE)
  def test_block(self, case, formulation):
    fx = testutil.Fixture(case)
    kw = fx.meta['kwargs']
    block = rgformer.TransformerBlock(
        kw['dim'], kw['num_heads'], kw['ffn_expansion_factor'],
        kw['LayerNorm_type'], retinex=fx.meta['module'] == 'RransformerBlock',
        depthwise=formulation)
    x, z = fx.get('in/x'), fx.get('in/z')
    v = _convert(block, fx.sd, x, z)
    self.check(fx, 'out/y', block.apply(v, x, z))

  @parameterized.parameters(*CONCRETE)
  def test_teacher(self, formulation):
    fx = testutil.Fixture('teacher_s1')
    net = Teacher(**TINY, n_encoder_res=2, depthwise=formulation)
    rex = lambda r, i: jnp.concatenate([fx.get(r), fx.get(i)], -1)
    args = (fx.get('in/lq'), fx.get('in/gt'), rex('in/r_lq', 'in/i_lq'),
            rex('in/r_gt', 'in/i_gt'))
    v = _convert(net, fx.sd, *args)
    res = jax.jit(net.apply)(v, *args)
    self.check(fx, 'out/img', res['out'])
    for name in ('decom_img', 'decom_mat', 'z_rex', 'z_img'):
      self.check(fx, f'out/{name}', res[name])

  @parameterized.parameters(*CONCRETE)
  def test_interface_sampler(self, formulation):
    fx = testutil.Fixture('sampler_interface')
    net = Interface(**TINY, n_encoder_res=2, depthwise=formulation)
    lq, rex = fx.get('in/lq'), fx.get('in/rex_lq')
    nr, ni = fx.get('noise/rex'), fx.get('noise/img')
    v = _convert(net, fx.sd, lq, rex, nr, ni)
    # Conditions, 5 Euler steps of the velocity MLPs and G: one compile.
    out = jax.jit(net.apply, static_argnums=5)(v, lq, rex, nr, ni, 5)
    self.check(fx, 'out/img_steps5', out)

  @parameterized.parameters(*irflow_unet.ATTENTION_FORMULATIONS)
  def test_irflow_unet(self, attention):
    fx = testutil.Fixture('irflow_unet', family='irflow')
    kw = fx.meta['kwargs']
    net = irflow_unet.ConditionalUNet(
        nf=kw['nf'], depth=kw['depth'], in_nc=kw['in_nc'],
        out_nc=kw['out_nc'], attention=attention)
    x, ks = fx.get('in/x'), fx.get('in/ks')
    v = _convert(net, fx.sd, x, ks[:1])
    run = jax.jit(net.apply)
    for i, k in enumerate(ks.tolist()):
      self.check(fx, f'out/y_t{k}', run(v, x, ks[i:i + 1]))
    self.check(fx, 'out/y2', run(v, fx.get('in/x2'), fx.get('in/t2')))


if __name__ == '__main__':
  absltest.main()
