"""Converter: strict accounting, wrappers, untrusted files and the CLI."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from restorect_jax.core import checkpoint_io
from restorect_jax import convert
from restorect_jax.models import DecomNet
from restorect_jax.models import Student
from restorect_jax.models import Interface
import testutil

TINY = dict(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
            n_encoder_res=2)


def _decom_template():
  return DecomNet().init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))


def _student_args():
  return (np.zeros((1, 32, 32, 3), np.float32),
          np.zeros((1, 32, 32, 4), np.float32),
          np.zeros((1, 256), np.float32), np.zeros((1, 256), np.float32))


class StrictAccountingTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.sd = testutil.Fixture('decomnet').sd
    self.template = _decom_template()

  def test_unmapped_key_is_listed(self):
    sd = dict(self.sd, **{'decom.8.weight': np.zeros((4,), np.float32)})
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 unmapped[\s\S]*decom\.8\.weight'):
      convert.torch_to_flax(sd, self.template)
    out = convert.torch_to_flax(sd, self.template,
                                allow_unmapped=[r'^decom\.8\.'])
    self.assertNotIn('decom.8', out['params'])

  def test_missing_key_is_listed(self):
    sd = {k: v for k, v in self.sd.items() if k != 'decom.2.bias'}
    with self.assertRaisesRegex(convert.ConversionError,
                                r'1 missing[\s\S]*decom\.2\.bias'):
      convert.torch_to_flax(sd, self.template)

  def test_misshaped_key_is_listed(self):
    sd = dict(self.sd)
    sd['decom.0.weight'] = np.zeros((32, 4, 3, 3), np.float32)
    with self.assertRaisesRegex(convert.ConversionError,
                                r'mis-shaped[\s\S]*decom\.0\.weight'):
      convert.torch_to_flax(sd, self.template)

  def test_allowed_missing_keeps_init(self):
    sd = {k: v for k, v in self.sd.items() if 'anisotropic' not in k}
    with self.assertRaises(convert.ConversionError):
      convert.torch_to_flax(sd, self.template)
    out = convert.torch_to_flax(sd, self.template,
                                **convert.PRESETS['decomnet'])
    self.assertEqual(out['params']['anisotropic_diffusion.s'], np.float32(0.1))

  def test_layouts(self):
    out = convert.torch_to_flax(self.sd, self.template)
    w = self.sd['decom.0.weight']  # OIHW (32, 3, 3, 3)
    np.testing.assert_array_equal(out['params']['decom.0']['weight'],
                                  w.transpose(2, 3, 1, 0))


class StudentCheckpointTest(absltest.TestCase):
  """Aliases, shared ResBlocks and the S2 → Interface load."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.student = Student(**TINY).init(jax.random.key(1), *_student_args())
    cls.sd = convert.flax_to_torch(cls.student)
    cls.iface_template = jax.eval_shape(
        Interface(**TINY).init, jax.random.key(0), *_student_args())

  def test_student_sd_has_reference_keys(self):
    self.assertIn('img_diffusion.model.resmlp.0.weight', self.sd)
    self.assertIn('rex_diffusion.condition.E_I.2.body.0.weight', self.sd)
    self.assertIn('rex_condition.E_I.3.body.2.bias', self.sd)
    self.assertIn('img_diffusion.timesteps_array', self.sd)
    np.testing.assert_array_equal(self.sd['rex_diffusion.timesteps_array'],
                                  np.linspace(0, 1, 4, dtype=np.float32))

  def test_s2_to_interface_drops_decom_only_when_allowed(self):
    with self.assertRaisesRegex(convert.ConversionError,
                                r'unmapped[\s\S]*G\.decom\.decom\.0\.weight'):
      convert.torch_to_flax(self.sd, self.iface_template)
    out = convert.torch_to_flax(self.sd, self.iface_template,
                                **convert.PRESETS['interface'])
    self.assertNotIn('decom', out['params']['G'])
    np.testing.assert_array_equal(
        out['params']['G']['img_output']['weight'],
        self.student['params']['G']['img_output']['weight'])

  def test_inconsistent_alias_is_an_error(self):
    sd = dict(self.sd)
    sd['img_diffusion.model.resmlp.0.bias'] = sd[
        'img_diffusion.model.resmlp.0.bias'] + 1
    with self.assertRaisesRegex(convert.ConversionError,
                                r'img_diffusion\.model\.resmlp\.0\.bias '
                                r'differs'):
      convert.torch_to_flax(sd, self.iface_template,
                            **convert.PRESETS['interface'])

  def test_inconsistent_shared_resblock_is_an_error(self):
    sd = dict(self.sd)
    sd['rex_condition.E_I.2.body.0.bias'] = sd[
        'rex_condition.E_I.2.body.0.bias'] * 2 + 1
    with self.assertRaisesRegex(convert.ConversionError,
                                r'E_I\.2\.body\.0\.bias differs'):
      convert.torch_to_flax(sd, self.iface_template,
                            **convert.PRESETS['interface'])

  def test_alias_only_checkpoint_loads(self):
    sd = {k: v for k, v in self.sd.items()
          if not k.startswith(('img_denoise.', 'img_condition.'))}
    out = convert.torch_to_flax(sd, self.iface_template,
                                **convert.PRESETS['interface'])
    np.testing.assert_array_equal(
        out['params']['img_denoise']['resmlp.0']['weight'],
        self.student['params']['img_denoise']['resmlp.0']['weight'])


class FileFormatTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp()
    self.sd = testutil.Fixture('decomnet').sd

  def test_npz_basicsr_wrapper_prefers_ema(self):
    ema = {k: v + 1 for k, v in self.sd.items()}
    got = convert.unwrap_state_dict({'params': self.sd, 'params_ema': ema})
    np.testing.assert_array_equal(got['decom.0.bias'], ema['decom.0.bias'])
    got = convert.unwrap_state_dict({'params': self.sd, 'params_ema': ema},
                                    prefer='params')
    np.testing.assert_array_equal(got['decom.0.bias'],
                                  self.sd['decom.0.bias'])

  def test_missing_file(self):
    with self.assertRaisesRegex(FileNotFoundError, 'nope.npz'):
      convert.load_state_dict(os.path.join(self.dir, 'nope.npz'))

  def test_npz_with_pickled_objects_is_refused(self):
    path = os.path.join(self.dir, 'evil.npz')
    np.savez(path, x=np.array([{'a': 1}], dtype=object))
    with self.assertRaisesRegex(convert.ConversionError, 'evil.npz'):
      convert.load_state_dict(path)

  def test_corrupt_npz(self):
    path = os.path.join(self.dir, 'bad.npz')
    with open(path, 'wb') as f:
      f.write(b'PK\x03\x04 not really a zip')
    with self.assertRaisesRegex(convert.ConversionError, 'bad.npz'):
      convert.load_state_dict(path)

  def test_pth_real_weights_equal_npz(self):
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      self.skipTest('torch extra not installed')
    w = testutil.shared_dir() / 'weights' / 'retidiff'
    for name in ('init_low', 'init_high', 'retinex_decomnet'):
      a = convert.load_state_dict(str(w / f'{name}.pth'))
      b = convert.load_state_dict(str(w / f'{name}.npz'))
      self.assertEqual(sorted(a), sorted(b))
      for k in a:
        np.testing.assert_array_equal(a[k], b[k])

  def test_hostile_pth_is_refused(self):
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      self.skipTest('torch extra not installed')
    marker = os.path.join(self.dir, 'pwned')

    class Evil:
      def __reduce__(self):
        return (open, (marker, 'w'))

    path = os.path.join(self.dir, 'evil.pth')
    with open(path, 'wb') as f:
      pickle.dump({'decom.0.weight': Evil()}, f)
    with self.assertRaisesRegex(convert.ConversionError, 'weights_only'):
      convert.load_state_dict(path)
    self.assertFalse(os.path.exists(marker))

  def test_pth_write_read_round_trip(self):
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      self.skipTest('torch extra not installed')
    path = os.path.join(self.dir, 'w.pth')
    convert.save_state_dict(self.sd, path, basicsr_wrap=True)
    back = convert.load_state_dict(path)
    for k, v in self.sd.items():
      np.testing.assert_array_equal(back[k], v)


class CliTest(absltest.TestCase):

  def _run(self, *args):
    return subprocess.run([sys.executable, '-m', 'restorect_jax.convert',
                           *args], capture_output=True, text=True,
                          check=False, cwd=testutil.REPO)

  def test_help(self):
    res = self._run('--help')
    self.assertEqual(res.returncode, 0, res.stderr)
    self.assertIn('--allow_unmapped', res.stdout)

  def test_round_trip_through_cli(self):
    d = tempfile.mkdtemp()
    src = str(testutil.shared_dir() / 'weights' / 'retidiff' /
              'retinex_decomnet.npz')
    flax_dir = os.path.join(d, 'flax')
    res = self._run('--model', 'decomnet', '--input', src, '--output',
                    flax_dir)
    self.assertEqual(res.returncode, 0, res.stderr)
    self.assertEqual(checkpoint_io.load_metadata(flax_dir)['model'],
                     'decomnet')
    back = os.path.join(d, 'back.npz')
    res = self._run('--model', 'decomnet', '--input', flax_dir, '--output',
                    back)
    self.assertEqual(res.returncode, 0, res.stderr)
    orig = convert.load_state_dict(src)
    got = convert.load_state_dict(back)
    for k, v in orig.items():
      np.testing.assert_array_equal(got[k], v)
    self.assertEqual(float(got['anisotropic_diffusion.s']), np.float32(0.1))
    # An existing output is not overwritten without --overwrite.
    res = self._run('--model', 'decomnet', '--input', src, '--output',
                    flax_dir)
    self.assertNotEqual(res.returncode, 0)
    self.assertIn('exists', res.stderr)

  def test_mismatched_model_fails_with_listing(self):
    src = str(testutil.shared_dir() / 'weights' / 'retidiff' /
              'init_low.npz')
    res = self._run('--model', 'interface', '--variant', 'tiny', '--input',
                    src, '--output', os.path.join(tempfile.mkdtemp(), 'x'))
    self.assertNotEqual(res.returncode, 0)
    self.assertIn('unmapped', res.stderr)
    self.assertIn('decom.0.weight', res.stderr)


if __name__ == '__main__':
  absltest.main()
