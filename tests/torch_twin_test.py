"""The PyTorch twins: equal to the Flax models and to the PyTorch reference.

* Flax → twin (``torch_twin.from_flax``): same inputs and injected noise give
  the Flax outputs (max|Δ| ≤ 1e-4), including the RestoRect prior sampler at
  1/4/5 steps, IR-Flow's 4-step Euler and one S2 phase-2 loss with its
  gradient against ``methods.restorect.steps.student_loss``.
* Reference state dicts (``../shared/parity``) loaded straight into the twins
  reproduce the recorded PyTorch outputs at each fixture's tolerance, without
  going through the Flax code.
* Flax → twin → Flax is bit-exact; bad state dicts fail naming the keys;
  ``restorect_jax`` imports without torch and the twin says how to get it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import zlib

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np
import torch

from restorect_jax import convert
from restorect_jax.methods.restorect import flow
from restorect_jax.methods.irflow import flow as irflow_flow
from restorect_jax.methods.restorect import losses as jax_losses
from restorect_jax.methods.restorect import steps as steps_lib
from restorect_jax import torch_twin
from restorect_jax.models import Model
from restorect_jax.torch_twin import rgformer as twin_rgformer
import testutil

sys.path.insert(0, str(testutil.REPO))
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

ATOL = 1e-4  # Flax vs twin, float32
# XLA:CPU backend optimisation off: half the compile time of these one-shot
# programs, same numbers (checked on the S2 loss: bit-identical).
_COMPILE_OPTIONS = {'xla_backend_optimization_level': 0}
_CACHE: dict[str, object] = {}
_TORCH_THREADS: list[int] = []


def setUpModule():  # pylint: disable=invalid-name
  # Tiny tensors: more intra-op threads only spin against XLA's and other
  # processes' threads (a tiny forward takes 3 s instead of 0.03 s).
  _TORCH_THREADS.append(torch.get_num_threads())
  torch.set_num_threads(1)


def tearDownModule():  # pylint: disable=invalid-name
  torch.set_num_threads(_TORCH_THREADS.pop())


def _compile(fn, *args):
  """``jax.jit(fn)`` compiled for ``args`` with :data:`_COMPILE_OPTIONS`."""
  return jax.jit(fn).lower(*args).compile(_COMPILE_OPTIONS)


def _run(fn, *args):
  return _compile(fn, *args)(*args)


def _t(a) -> torch.Tensor:
  """NumPy/JAX array → torch tensor, images NHWC → NCHW."""
  a = np.asarray(a)
  return torch.from_numpy(np.array(  # a writable, contiguous copy
      a.transpose(0, 3, 1, 2) if a.ndim == 4 else a, order='C'))


def _nhwc(t: torch.Tensor) -> np.ndarray:
  a = t.detach().cpu().numpy()
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _images(seed: int, *shape) -> np.ndarray:
  return np.random.RandomState(seed).uniform(size=shape).astype(np.float32)


def _noise(seed: int, b: int) -> np.ndarray:
  return np.random.RandomState(seed).normal(size=(b, 256)).astype(np.float32)


def _fill(template, seed: int):
  """Random variables of a template's shapes, without running ``init``.

  Kernels ~ N(0, 1/fan_in) (HWIO / (in, out): fan-in is every axis but the
  last), gains and temperatures 1 + 0.1·N, biases 0.1·N, the time grids
  linspace(0, 1); compiling ``init`` would cost as much as the forward.
  """
  r = np.random.RandomState(seed)

  def leaf(path, s):
    name = path[-1].key
    if name == 'timesteps_array':
      return np.linspace(0, 1, s.shape[0], dtype=np.float32)
    gain = name == 'temperature' or (name in ('weight', 'g') and
                                     len(s.shape) == 1)
    if gain:
      v = 1 + 0.1 * r.normal(size=s.shape)
    elif name == 'anisotropic_diffusion.s':
      v = 0.1 + 0.01 * r.normal(size=s.shape)
    elif len(s.shape) >= 2:
      v = r.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]))
    else:
      v = 0.1 * r.normal(size=s.shape)
    return np.asarray(v, np.float32)

  return jax.tree_util.tree_map_with_path(leaf, template)


def _flax(name: str, variant: str = 'tiny'):
  """(module, variables, example args) of a registry model, cached."""
  key = f'{name}/{variant}'
  if key not in _CACHE:
    model = Model(name, variant)
    lq, gt = _images(0, 2, 16, 16, 3), _images(1, 2, 16, 16, 3)
    rex_lq, rex_gt = _images(2, 2, 16, 16, 4), _images(3, 2, 16, 16, 4)
    args = {
        'teacher': (lq, gt, rex_lq, rex_gt),
        'student': (lq, rex_lq, _noise(4, 2), _noise(5, 2)),
        'interface': (lq, rex_lq, _noise(4, 2), _noise(5, 2)),
        'decomnet': (lq,),
        'irflow': (_images(6, 2, 20, 20, 3), np.array([250], np.int32)),
    }[name]
    template = jax.eval_shape(model.init, jax.random.key(0), *args)
    seed = zlib.crc32(key.encode())  # fixed per model, whatever the order
    _CACHE[key] = (model, _fill(dict(template), seed), args)
  return _CACHE[key]


def _check(test, got: torch.Tensor, want, tol: float, what: str) -> None:
  testutil.assert_close(test, _nhwc(got), want, tol, what)


class FlaxEquivalenceTest(parameterized.TestCase):
  """``from_flax`` twins reproduce the Flax modules."""

  def test_decomnet(self):
    model, variables, (img,) = _flax('decomnet')
    twin = torch_twin.from_flax('decomnet', 'tiny', variables)
    r, l = _run(model.apply, variables, img)
    with torch.no_grad():
      tr, tl = twin(_t(img))
      a = twin.anisotropic_diffusion(_t(img))
    _check(self, tr, r, ATOL, 'R')
    _check(self, tl, l, ATOL, 'L')
    s = variables['params']['anisotropic_diffusion.s']
    _check(self, a, _run(jax_losses.anisotropic_diffusion, img, s), ATOL,
           'anisotropic diffusion')

  def test_teacher(self):
    model, variables, args = _flax('teacher')
    twin = torch_twin.from_flax('teacher', 'tiny', variables)
    want = _run(model.apply, variables, *args)
    with torch.no_grad():
      got = twin(*map(_t, args))
    self.assertEqual(set(got), set(want))
    for k in want:
      _check(self, got[k], want[k], ATOL, f'teacher {k}')

  def test_interface_steps(self):
    model, variables, args = _flax('interface')
    twin = torch_twin.from_flax('interface', 'tiny', variables)
    with torch.no_grad():
      got = twin(*map(_t, args), num_steps=5)
    want = _run(lambda v, *a: model.apply(v, *a, 5), variables, *args)
    _check(self, got, want, ATOL, 'interface 5 steps')
    # Other step counts: the sampler alone (G is the same program).
    c_rex, c_img = _run(functools.partial(model.apply, method='conditions'),
                        variables, *args[:2])
    for steps in (1, 4):
      sample = functools.partial(model.apply, num_steps=steps,
                                 method='sample_from_conditions')
      want = _run(sample, variables, c_rex, c_img, *args[2:])
      with torch.no_grad():
        got = twin.sample_priors(*map(_t, args), steps)
      for g, w, which in zip(got, want, ('rex', 'img'), strict=True):
        _check(self, g, w, ATOL, f'interface z_{which}, {steps} steps')

  def test_student_forward(self):
    model, variables, args = _flax('student')
    twin = torch_twin.from_flax('student', 'tiny', variables)
    want = _run(lambda v, *a: model.apply(v, *a, 4), variables, *args)
    got = twin(*map(_t, args), num_steps=4)
    self.assertFalse(got['z_rex'].requires_grad)  # sampled without grad
    self.assertTrue(got['out'].requires_grad)
    for k in want:
      _check(self, got[k], want[k], ATOL, f'student {k}')

  def test_interface_accepts_student_variables(self):
    """The converter's interface preset drops the student's ``G.decom``."""
    _, variables, args = _flax('student')
    twin = torch_twin.from_flax('interface', 'tiny',
                                {'params': variables['params']})
    student = torch_twin.from_flax('student', 'tiny', variables)
    with torch.no_grad():
      np.testing.assert_array_equal(
          twin(*map(_t, args), num_steps=4).numpy(),
          student(*map(_t, args), num_steps=4)['out'].numpy())

  def test_irflow_forward_and_euler(self):
    model, variables, (x, k) = _flax('irflow')
    twin = torch_twin.from_flax('irflow', 'tiny', variables)
    apply = _compile(model.apply, variables, x, k)
    with torch.no_grad():
      _check(self, twin(_t(x), _t(k).long()), apply(variables, x, k), ATOL,
             'irflow f(x, k)')
    want = irflow_flow.euler_sample(lambda xx, kk: apply(variables, xx, kk),
                                    x, 4)
    _check(self, torch_twin.irflow_euler_sample(twin, _t(x), 4), want, ATOL,
           'irflow Euler N=4')

  def test_schedules_match_flax(self):
    for n in range(1, 21):
      self.assertEqual(torch_twin.irflow_euler_schedule(n),
                       tuple(irflow_flow.euler_schedule(n)), n)
      self.assertEqual(torch_twin.time_labels(n), flow.time_labels(n), n)


class StudentLossTest(absltest.TestCase):
  """One S2 phase-2 loss and its gradient, twin vs ``steps.student_loss``
  (``restorect_jax.methods.restorect.steps``)."""

  def test_phase2_loss_and_gradients(self):
    student, s_vars, _ = _flax('student')
    teacher, t_vars, _ = _flax('teacher')
    decom, d_vars, _ = _flax('decomnet')
    d_high = _fill(d_vars, 11)
    lq, gt = _images(20, 2, 16, 16, 3), _images(21, 2, 16, 16, 3)
    config = common.restorect('s2', 'lol_v1')
    config.rf_steps = 4
    rng = jax.random.key(3)
    batch = {'lq': lq, 'gt': gt}
    jax_draws = steps_lib.draw_student(rng, batch)
    loss_fn = lambda p: steps_lib.student_loss(
        p, batch,
        {'decom_low': d_vars, 'decom_high': d_high,
         'teacher': t_vars['params']}, jax_draws, phase=2, student=student,
        teacher=teacher, decom=decom, config=config)
    (loss, metrics), grads = _run(jax.value_and_grad(loss_fn, has_aux=True),
                                  {'model': s_vars['params']})

    # The draws of draw_student from ``rng``, in the reference's order
    # (rex then img: time label, ε; then the sampler noise), derived here
    # by hand from the keys: the twin replays exactly these.
    keys = jax.random.split(rng, 6)
    draws = []
    for i, which in enumerate(('rex', 'img')):
      _, t_idx = flow.sample_time(keys[2 * i], 2)
      eps = jax.random.normal(keys[2 * i + 1], (2, 256))
      np.testing.assert_array_equal(jax_draws[f't_idx_{which}'], t_idx)
      np.testing.assert_array_equal(jax_draws[f'eps_{which}'], eps)
      draws += [_t(t_idx).long(), _t(eps)]
    k_rex, k_img = jax.random.split(keys[4])
    for which, k in (('rex', k_rex), ('img', k_img)):
      noise = jax.random.normal(k, (2, 256))
      np.testing.assert_array_equal(jax_draws[f'noise_{which}'], noise)
      draws.append(_t(noise))

    twin = torch_twin.from_flax('student', 'tiny', s_vars).train()
    t_loss, t_metrics = torch_twin.student_loss(
        twin, torch_twin.from_flax('teacher', 'tiny', t_vars),
        torch_twin.from_flax('decomnet', 'tiny', d_vars),
        torch_twin.from_flax('decomnet', 'tiny', d_high), _t(lq), _t(gt),
        torch_twin.StudentRandoms(*draws), phase=2,
        config=torch_twin.StudentLossConfig(rf_steps=4))
    t_loss.backward()
    self.assertEqual(set(t_metrics), set(metrics))
    for k, v in metrics.items():
      self.assertAlmostEqual(t_metrics[k].item(), float(v), delta=ATOL,
                             msg=k)
    flat = convert.flatten_variables({'params': grads['model']})
    t_grads = {k: p.grad for k, p in twin.named_parameters()}
    self.assertEqual(set(t_grads), set(flat))
    for k, (_, g) in flat.items():
      want = convert.flax_to_torch_array(np.asarray(g), k)
      scale = max(float(np.abs(want).max()), 1e-3)
      self.assertIsNotNone(t_grads[k], k)
      testutil.assert_close(self, t_grads[k].numpy(), want, 1e-3 * scale,
                            f'grad {k}')


class ReferenceFixtureTest(parameterized.TestCase):
  """Reference state dicts straight into the twins, recorded outputs."""

  def check(self, fx, name, got):
    testutil.assert_close(self, _nhwc(got), fx.get(name), fx.tolerance(name),
                          f'{fx.meta["case"]}:{name}')

  def inputs(self, fx, *names):
    return [torch.from_numpy(fx.raw[n]) for n in names]

  @torch.no_grad()
  def test_decomnet(self):
    fx = testutil.Fixture('decomnet')
    twin = torch_twin.load_reference('decomnet', 'default', fx.sd)
    (img,) = self.inputs(fx, 'in/img')
    r, l = twin(img)
    self.check(fx, 'out/R', r)
    self.check(fx, 'out/L', l)
    self.check(fx, 'out/raw', twin.decom(img))

  @torch.no_grad()
  def test_published_decomnet_pth(self):
    """``init_low.pth`` read with weights_only, as the reference loads it."""
    shared = testutil.shared_dir()
    with np.load(shared / 'parity' / 'real' /
                 'decomnet_low_coffee.npz') as z:
      img, want = z['in/img'], z['out/raw']
    twin = torch_twin.load_reference(
        'decomnet', 'default',
        str(shared / 'weights' / 'retidiff' / 'init_low.pth'))
    self.assertEqual(twin.anisotropic_diffusion.s.item(), np.float32(0.1))
    got = twin.decom(torch.from_numpy(img)).numpy()
    testutil.assert_close(self, got, want, 1e-5 * max(1, np.abs(want).max()),
                          'decomnet_low_coffee')

  @torch.no_grad()
  def test_teacher(self):
    fx = testutil.Fixture('teacher_s1')
    twin = torch_twin.load_reference('teacher', 'tiny', fx.sd)
    lq, gt, r_lq, i_lq, r_gt, i_gt = self.inputs(
        fx, 'in/lq', 'in/gt', 'in/r_lq', 'in/i_lq', 'in/r_gt', 'in/i_gt')
    res = twin(lq, gt, torch.cat([r_lq, i_lq], 1), torch.cat([r_gt, i_gt], 1))
    self.check(fx, 'out/img', res['out'])
    for name in ('decom_img', 'decom_mat', 'z_rex', 'z_img'):
      self.check(fx, f'out/{name}', res[name])

  @torch.no_grad()
  def test_rgformer(self):
    fx = testutil.Fixture('rgformer_s1')
    kw = fx.meta['kwargs']
    g = twin_rgformer.RGFormer(kw['dim'], kw['num_blocks'],
                               kw['num_refinement_blocks'], kw['heads'])
    torch_twin.load_state_dict(g, fx.sd, what='rgformer_s1')
    out, decom_img, decom_mat = g(*self.inputs(fx, 'in/lq', 'in/z_rex',
                                               'in/z_img'))
    self.check(fx, 'out/img', out)
    self.check(fx, 'out/decom_img', decom_img)
    self.check(fx, 'out/decom_mat', decom_mat)

  @parameterized.parameters(
      'block_rransformer_c32_h2_scln', 'block_transformer_c32_h1_scln',
      'block_rransformer_c32_h2_withbias',
      'block_rransformer_c32_h2_scln_clamp')
  @torch.no_grad()
  def test_block(self, case):
    fx = testutil.Fixture(case)
    kw = fx.meta['kwargs']
    block = twin_rgformer.TransformerBlock(
        kw['dim'], kw['num_heads'], kw['ffn_expansion_factor'],
        kw['LayerNorm_type'], retinex=fx.meta['module'] == 'RransformerBlock')
    torch_twin.load_state_dict(block, fx.sd, what=case)
    x, z = self.inputs(fx, 'in/x', 'in/z')
    self.check(fx, 'out/y', block(x, z))
    self.check(fx, 'out/norm1', block.norm1(x))

  @torch.no_grad()
  def test_interface_and_student_sampler(self):
    fx = testutil.Fixture('sampler_interface')
    lq, rex, nr, ni = self.inputs(fx, 'in/lq', 'in/rex_lq', 'noise/rex',
                                  'noise/img')
    interface = torch_twin.load_reference('interface', 'tiny', fx.sd)
    # The training student has the same keys plus G.decom (not recorded).
    student = torch_twin.load_state_dict(
        torch_twin.build('student', 'tiny'), fx.sd, what='sampler_interface',
        allow_missing=[r'^G\.decom\.']).eval()
    c_rex, c_img = interface.conditions(lq, rex)
    self.check(fx, 'out/c_rex', c_rex)
    self.check(fx, 'out/c_img', c_img)
    for steps in (4, 5):
      z_rex, z_img = interface.sample_priors(lq, rex, nr, ni, steps)
      self.check(fx, f'out/z_rex_steps{steps}', z_rex)
      self.check(fx, f'out/z_img_steps{steps}', z_img)
      self.check(fx, f'out/img_steps{steps}', interface(lq, rex, nr, ni,
                                                        steps))
      res = student(lq, rex, nr, ni, steps)
      self.check(fx, f'out/img_steps{steps}', res['out'])
      self.check(fx, f'out/z_rex_steps{steps}', res['z_rex'])
      self.check(fx, f'out/z_img_steps{steps}', res['z_img'])

  def test_restore_odd_size_end_to_end(self):
    """Pad → Dl (decomnet fixture weights) → priors → G → crop."""
    fx = testutil.Fixture('sampler_interface')
    interface = torch_twin.load_reference('interface', 'tiny', fx.sd)
    decom = torch_twin.load_reference('decomnet', 'default',
                                      testutil.Fixture('decomnet').sd)
    lq, nr, ni = self.inputs(fx, 'in/lq_odd', 'noise/rex_odd',
                             'noise/img_odd')
    out = torch_twin.restore_with_noise(interface, decom, lq, nr, ni,
                                        rf_steps=5, clip=False)
    self.assertFalse(out.requires_grad)
    self.check(fx, 'out/img_odd_steps5', out)
    clipped = torch_twin.restore_with_noise(interface, decom, lq, nr, ni)
    np.testing.assert_array_equal(clipped.numpy(), out.clamp(0, 1).numpy())

  @torch.no_grad()
  def test_irflow_unet(self):
    fx = testutil.Fixture('irflow_unet', family='irflow')
    twin = torch_twin.load_reference('irflow', 'small', fx.sd)
    x, ks, x2, t2 = self.inputs(fx, 'in/x', 'in/ks', 'in/x2', 'in/t2')
    for i, k in enumerate(ks.tolist()):
      self.check(fx, f'out/y_t{k}', twin(x, ks[i:i + 1]))
    self.check(fx, 'out/y2', twin(x2, t2))
    self.check(fx, 'out/temb_t500', twin.time_embedding(500))

  def test_irflow_euler(self):
    fx = testutil.Fixture('irflow_euler', family='irflow')
    twin = torch_twin.load_reference('irflow', 'tiny', fx.sd)
    (x,) = self.inputs(fx, 'in/x_lq')
    for n in (1, 2, 4, 5):
      self.check(fx, f'out/euler_N{n}',
                 torch_twin.irflow_euler_sample(twin, x, n))


class WeightsTest(parameterized.TestCase):
  """Round trips and strict loading."""

  @parameterized.parameters('teacher', 'student', 'interface', 'decomnet',
                            'irflow')
  def test_flax_torch_flax_is_exact(self, name):
    _, variables, _ = _flax(name)
    twin = torch_twin.from_flax(name, 'tiny', variables)
    self.assertFalse(twin.training)
    sd = convert.flax_to_torch(variables)
    own = twin.state_dict()
    self.assertEqual(set(own), set(sd))
    for k, v in sd.items():
      self.assertEqual(own[k].dtype, torch.float32, k)
      np.testing.assert_array_equal(own[k].numpy(), v, err_msg=k)
    back = torch_twin.to_flax(name, twin, 'tiny')
    want = jax.tree_util.tree_leaves_with_path(variables)
    got = dict(jax.tree_util.tree_leaves_with_path(back))
    self.assertLen(got, len(want))
    for path, leaf in want:
      np.testing.assert_array_equal(got[path], leaf, err_msg=str(path))

  def test_bare_params_keep_time_grids(self):
    _, variables, _ = _flax('interface')
    twin = torch_twin.from_flax('interface', 'tiny', variables['params'])
    np.testing.assert_array_equal(twin.img_diffusion.timesteps_array.numpy(),
                                  torch.linspace(0, 1, 4).numpy())

  def test_wrong_variant_lists_keys(self):
    _, variables, _ = _flax('teacher')  # tiny: 2 ResBlocks, demo has 1
    with self.assertRaisesRegex(
        convert.ConversionError,
        r'teacher/demo[\s\S]*unmapped[\s\S]*E_img\.E\.3\.body\.0\.weight'
        r'[\s\S]*missing[\s\S]*E_img\.E\.3\.weight'):
      torch_twin.from_flax('teacher', 'demo', variables)

  def test_missing_extra_misshaped_and_untied_keys(self):
    fx = testutil.Fixture('decomnet')
    build = lambda: torch_twin.build('decomnet')
    sd = {k: v for k, v in fx.sd.items() if k != 'decom.2.bias'}
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 missing[\s\S]*decom\.2\.bias'):
      torch_twin.load_state_dict(build(), sd)
    sd = dict(fx.sd, **{'decom.8.weight': np.zeros(4, np.float32)})
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 unmapped[\s\S]*decom\.8\.weight'):
      torch_twin.load_state_dict(build(), sd)
    sd = dict(fx.sd, **{'decom.0.weight': np.zeros((32, 4, 3, 3))})
    with self.assertRaisesRegex(convert.ConversionError,
                                r'mis-shaped[\s\S]*decom\.0\.weight: got '
                                r'\(32, 4, 3, 3\), expected \(32, 3, 3, 3\)'):
      torch_twin.load_state_dict(build(), sd)
    fx = testutil.Fixture('rpe_teacher')  # shared ResBlocks stored twice
    sd = dict(fx.sd)
    sd['E_I.2.body.0.bias'] = sd['E_I.2.body.0.bias'] + 1
    rpe = torch_twin.RetinexPriorEncoder(128, n_encoder_res=2,
                                         normalize=False)
    with self.assertRaisesRegex(convert.ConversionError,
                                r'inconsistent[\s\S]*E_.\.2\.body\.0\.bias'):
      torch_twin.load_state_dict(rpe, sd)
    torch_twin.load_state_dict(rpe, fx.sd)

  def test_build_errors(self):
    with self.assertRaisesRegex(ValueError, 'Unknown model'):
      torch_twin.build('nope')
    with self.assertRaisesRegex(ValueError, 'Unknown variant'):
      torch_twin.build('teacher', 'huge')
    with self.assertRaisesRegex(ValueError, 'Flax-only'):
      torch_twin.build('teacher', 'tiny', dtype='bfloat16')
    with self.assertRaisesRegex(ValueError, r'\(B, 3, H, W\)'):
      torch_twin.build('decomnet')(torch.zeros(1, 16, 16, 3))


class OptionalTorchTest(absltest.TestCase):

  def test_import_without_torch(self):
    code = (
        'import sys\n'
        'sys.modules["torch"] = None  # as if torch were not installed\n'
        'import restorect_jax, restorect_jax.models, restorect_jax.convert\n'
        'try:\n'
        '  import restorect_jax.torch_twin\n'
        'except ImportError as e:\n'
        '  print("ImportError:", e)\n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300, check=False,
                         env=dict(os.environ, JAX_PLATFORMS='cpu'))
    self.assertEqual(res.returncode, 0, res.stderr)
    self.assertIn("ImportError: restorect_jax.torch_twin needs PyTorch",
                  res.stdout)
    self.assertIn("pip install -e '.[torch]'", res.stdout)


if __name__ == '__main__':
  absltest.main()
