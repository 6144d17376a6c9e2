"""One compiled program per (method, shape) for any sampler step count.

Every sampler takes its step count N as a traced int32 scalar, so a jitted
function with N as a non-static argument compiles once per input shape
however many N it is called with. Checked through the model-level entry
points (issue 16 item 2), with the recorded reference weights so outputs
are also compared with the PyTorch records:

* RestoRect: the tiny Interface (``Model('interface', 'tiny')``, the
  ``sampler_interface`` fixture's size) sampling its priors for N = 1…10,
  and its full ``__call__``;
* IR-Flow: the tiny ConditionalUNet (``Model('irflow', 'tiny')``, the
  ``irflow_euler`` fixture's size) with the Euler-1 sampler (every config's)
  for N = 1…50, and the parity-only Heun-2 and standard Euler for
  N = 1…10, 20, 50 (Heun's 1…50 alone is 2550 U-Net evaluations; the loop
  machinery is the same).

Outputs are also compared with the unrolled path (a Python int N).
"""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import convert
from restorect_jax.methods.irflow import flow as irflow_flow
from restorect_jax.methods.irflow import predictor as irflow_predictor
from restorect_jax.methods.restorect import predictor as restorect_predictor
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
import testutil

# Issue 16 item 2: the step counts each method is swept over.
RESTORECT_STEPS = range(1, 11)
IRFLOW_STEPS = {'euler': range(1, 51),
                'heun': (*range(1, 11), 20, 50),
                'standard_euler': (*range(1, 11), 20, 50)}
# The N compared with the unrolled path (every branch of each sampler: the
# hand-tuned N = 2, 3, 4, Heun's N = 1, 2 and ≥ 3, and the extremes).
IRFLOW_UNROLLED_CHECKS = (1, 2, 3, 4, 5, 10, 50)
# The parity fixtures' tolerance rule (shared/parity/README.md):
# max|Δ| ≤ 1e-5 · max(1, max|ref|).
PARITY_RTOL = 1e-5
# IR-Flow's sweep runs on a 16×16 crop of the fixture's 40×40 input (the
# smallest size the depth-4 U-Net takes); the full input is the second shape.
IRFLOW_CROP = 16


def _parity_tol(ref: np.ndarray) -> float:
  return PARITY_RTOL * max(1.0, float(np.max(np.abs(ref))))


class RestoRectCompileCountTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.fx = fx = testutil.Fixture('sampler_interface')
    cls.net = Model('interface', 'tiny')
    cls.args = tuple(fx.get(k) for k in ('in/lq', 'in/rex_lq', 'noise/rex',
                                         'noise/img'))
    template = jax.eval_shape(cls.net.init, jax.random.key(0), *cls.args)
    cls.variables = convert.torch_to_flax(fx.sd, template)

  def test_prior_sampling_compiles_once_per_shape(self):
    net, fx, v = self.net, self.fx, self.variables
    traces = []

    def sample(variables, lq, rex_lq, noise_rex, noise_img, steps):
      traces.append(lq.shape)
      return net.apply(variables, lq, rex_lq, noise_rex, noise_img, steps,
                       method='sample_priors')

    run = jax.jit(sample)
    got = {n: run(v, *self.args, jnp.int32(n)) for n in RESTORECT_STEPS}
    self.assertLen(traces, 1)
    self.assertEqual(run._cache_size(), 1)

    # Today's unrolled path (Python-int N), every N in one program, from the
    # same conditions: bit for bit.
    def unrolled(variables, lq, rex_lq, noise_rex, noise_img):
      c = net.apply(variables, lq, rex_lq, method='conditions')
      return {n: net.apply(variables, *c, noise_rex, noise_img, n,
                           method='sample_from_conditions')
              for n in RESTORECT_STEPS}

    want = jax.jit(unrolled)(v, *self.args)
    for n in RESTORECT_STEPS:
      for which, a, b in zip(('rex', 'img'), got[n], want[n]):
        np.testing.assert_array_equal(a, b, err_msg=f'z_{which} N={n}')
    # The PyTorch records (N = 4, 5).
    for n in (4, 5):
      for which, a in zip(('rex', 'img'), got[n]):
        name = f'out/z_{which}_steps{n}'
        testutil.assert_close(self, a, fx.get(name), fx.tolerance(name), name)

    # A second shape (the odd-size record, reflect-padded to 40×48): one
    # more program, whatever N.
    odd = (fx.get('out/lq_odd_padded'), fx.get('in/rex_lq_odd'),
           fx.get('noise/rex_odd'), fx.get('noise/img_odd'))
    for n in (1, 5, 10):
      z = run(v, *odd, jnp.int32(n))
      if n == 5:
        for which, a in zip(('rex', 'img'), z):
          name = f'out/z_{which}_odd_steps5'
          testutil.assert_close(self, a, fx.get(name), fx.tolerance(name),
                                name)
    self.assertLen(traces, 2)
    self.assertEqual(run._cache_size(), 2)

  def test_call_takes_traced_steps(self):
    # __call__ (priors, then G) of the Interface and of the training
    # Student traces with an abstract int32 N: the sampling is the one
    # checked above, so tracing (no compile of G) is the check here.
    for name in ('interface', 'student'):
      net = Model(name, 'tiny')
      variables = jax.eval_shape(net.init, jax.random.key(0), *self.args)
      out = jax.eval_shape(net.apply, variables, *self.args,
                           jax.ShapeDtypeStruct((), jnp.int32))
      img = out if name == 'interface' else out['out']
      self.assertEqual(img.shape, self.args[0].shape, name)

  def test_init_with_traced_steps(self):
    # The velocity nets' parameters are created outside the traced loop:
    # init gives the same variables with an int32 array or a Python int.
    net = Model('interface', 'demo')
    args = (jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 4)),
            jnp.zeros((1, 256)), jnp.zeros((1, 256)))
    key = jax.random.key(0)
    traced = jax.eval_shape(net.init, key, *args, jnp.int32(3))
    static = jax.eval_shape(net.init, key, *args, 3)
    self.assertEqual(jax.tree.structure(traced), jax.tree.structure(static))
    self.assertEqual(jax.tree.leaves(traced), jax.tree.leaves(static))


class PredictorCompileCountTest(absltest.TestCase):
  """Through the one inference path: a steps sweep compiles once."""

  def test_restorect_predictor(self):
    model = Model('interface', 'demo')
    img = jnp.zeros((1, 16, 16, 3))
    iface = model.init(jax.random.PRNGKey(0), img, jnp.zeros((1, 16, 16, 4)),
                       jnp.zeros((1, 256)), jnp.zeros((1, 256)), 1)
    decom = DecomNet().init(jax.random.PRNGKey(1), img)
    p = restorect_predictor.student_predictor(iface, decom, model=model,
                                              info={})
    lq = np.random.default_rng(0).uniform(size=(19, 21, 3)).astype(
        np.float32)
    before = restorect_predictor._priors._cache_size()  # pylint: disable=protected-access
    outs = [p.predict(lq, name='a.png', steps=n) for n in range(1, 11)]
    self.assertEqual(
        restorect_predictor._priors._cache_size() - before, 1)  # pylint: disable=protected-access
    # Different step counts are different samples (the sweep is real).
    self.assertGreater(float(np.abs(outs[0] - outs[-1]).max()), 0.0)

  def test_irflow_predictor(self):
    model = Model('irflow', 'tiny')
    x = jnp.zeros((1, 16, 16, 3))
    params = model.init(jax.random.PRNGKey(0), x,
                        jnp.zeros((1,), jnp.int32))['params']
    p = irflow_predictor.irflow_predictor(params, model=model, info={})
    lq = np.random.default_rng(1).uniform(size=(17, 18, 3)).astype(
        np.float32)
    before = irflow_predictor.sample._cache_size()  # pylint: disable=protected-access
    # The full 1…50 sweep runs at model level (IRFlowCompileCountTest).
    outs = [p.predict(lq, steps=n) for n in (1, 2, 3, 4, 5, 10, 20, 50)]
    self.assertEqual(irflow_predictor.sample._cache_size() - before, 1)  # pylint: disable=protected-access
    self.assertGreater(float(np.abs(outs[0] - outs[-1]).max()), 0.0)


class IRFlowCompileCountTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.fx = fx = testutil.Fixture('irflow_euler', family='irflow')
    kw = fx.meta['kwargs']
    cls.net = Model('irflow', 'tiny', nf=kw['nf'], depth=kw['depth'])
    template = convert.template_for('irflow', 'tiny', {'nf': kw['nf']})
    cls.variables = convert.torch_to_flax(fx.sd, template,
                                          **convert.PRESETS['irflow'])
    cls.x_lq = jnp.asarray(fx.get('in/x_lq'))

  @parameterized.parameters(
      ('euler', irflow_flow.euler_sample),
      ('heun', irflow_flow.heun_sample),
      ('standard_euler', irflow_flow.standard_euler_sample))
  def test_sampler_compiles_once_per_shape(self, name, sampler):
    net, fx, v = self.net, self.fx, self.variables
    traces = []

    def run_sampler(variables, x, steps):
      traces.append(x.shape)
      return sampler(lambda y, k: net.apply(variables, y, k), x, steps)

    run = jax.jit(run_sampler)
    crop = self.x_lq[:, :IRFLOW_CROP, :IRFLOW_CROP]
    got = {n: run(v, crop, jnp.int32(n)) for n in IRFLOW_STEPS[name]}
    self.assertLen(traces, 1)
    self.assertEqual(run._cache_size(), 1)

    # Today's unrolled path (Python-int N) with the network jitted per call,
    # as the parity tests drive it. Its update runs op by op while the
    # compiled loop fuses it (one rounding less), so the two agree to the
    # parity tolerance, not bit for bit (tests/irflow_flow_test.py checks
    # the schedules and the sampler's arithmetic exactly).
    apply = jax.jit(net.apply)
    for n in IRFLOW_UNROLLED_CHECKS:
      want = sampler(lambda y, k: apply(v, y, k), crop, n)
      testutil.assert_close(self, got[n], want, _parity_tol(want),
                            f'{name} N={n} vs unrolled')

    # The fixture's 40×40 input is a second shape: one more program, and
    # the PyTorch records.
    records = [k for k in fx.meta['tolerance_out']
               if k.startswith(f'out/{name}_N')]
    self.assertNotEmpty(records)
    for record in records:
      n = int(record.rsplit('_N', 1)[1])
      testutil.assert_close(self, run(v, self.x_lq, jnp.int32(n)),
                            fx.get(record), fx.tolerance(record), record)
    self.assertLen(traces, 2)
    self.assertEqual(run._cache_size(), 2)


if __name__ == '__main__':
  absltest.main()
