"""Bad inputs to every command: one clear line, the right status, no loss.

Table-driven. Each row is a command line of ``restore``, ``evaluate``,
``convert`` or ``main`` with a bad argument, file or image, and what must
happen: the exit status, the strings the ``error:`` line must name (the
file, the step, the flag), no traceback, and that finished outputs survive.
Hostile weight files (pickles whose payload would create a marker file,
object arrays, pickles renamed ``.npz`` / ``.pth``) are fed to every entry
point that reads weights; no marker may ever appear.

Speed: the models are small random-weight variants written once
(``setUpModule``); rows that fail before any image run concurrently; the
per-image cases of a command share one invocation over a folder of
adversarial images.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import numpy as np
from PIL import Image

from restorect_jax import cli_errors
from restorect_jax import convert
from restorect_jax.core import checkpoint_io
from restorect_jax.core import checkpointing
from restorect_jax.core.train_state import TrainState
from restorect_jax.evaluation import extra_metrics
from restorect_jax.evaluation import protocols as protocols_lib
from restorect_jax.inference import loading
import testutil

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # what open(path, 'w') gives: 0644 usually

F: 'Files'  # the shared fixtures, built once in setUpModule


# ----------------------------------------------------------------------------
# Hostile and damaged files.
# ----------------------------------------------------------------------------


class _OpenPayload:
  """Unpickling this calls ``open(marker, 'w')``: creates the marker."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))


class _SystemPayload:
  """Unpickling this runs ``touch marker`` through ``os.system``."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def hostile_pickle(path: str, marker: str, *, protocol: int = 2,
                   payload=_OpenPayload) -> str:
  """A state-dict-shaped pickle whose loading would create ``marker``."""
  with open(path, 'wb') as f:
    pickle.dump({'conv.weight': payload(marker)}, f, protocol=protocol)
  return path


damage = testutil.damage


def _random_variables(model_name: str, variant: str, *, nan: bool = False):
  """Small random weights of a registry model (no compilation needed)."""
  rng = np.random.default_rng(0)

  def leaf(s):
    if s.dtype.kind != 'f':
      return np.zeros(s.shape, s.dtype)
    return (0.05 * rng.standard_normal(s.shape)).astype(s.dtype)

  variables = jax.tree.map(leaf, convert.template_for(model_name, variant))
  if nan:
    first = jax.tree.leaves(variables['params'])[0]
    first[...] = np.nan
  return variables


def _photo(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
  rng = np.random.default_rng(seed)
  shape = (h, w) if channels == 1 else (h, w, channels)
  return (rng.uniform(0.1, 0.9, shape) * 255).astype(np.uint8)


def _png(path: str, img: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(img).save(path)
  return path


class Files:
  """Every fixture of the file, under one temporary root."""

  def __init__(self):
    self.root = tempfile.mkdtemp(prefix='bad_input_')
    self.markers = os.path.join(self.root, 'markers')
    os.makedirs(self.markers)
    j = lambda *p: os.path.join(self.root, *p)
    # Models (random weights, written once).
    self.irflow, self.interface, self.decom = j('irflow'), j('interface'), j(
        'decom')
    for path, name, variant in ((self.irflow, 'irflow', 'tiny'),
                                (self.interface, 'interface', 'demo'),
                                (self.decom, 'decomnet', 'default')):
      checkpoint_io.save_variables(
          _random_variables(name, variant), path,
          metadata={'model': name, 'variant': variant, 'overrides': {}})
    self.nan_irflow = j('nan_irflow')
    checkpoint_io.save_variables(
        _random_variables('irflow', 'tiny', nan=True), self.nan_irflow,
        metadata={'model': 'irflow', 'variant': 'tiny', 'overrides': {}})
    self.irflow_npz = j('irflow.npz')
    convert.save_state_dict(
        convert.flax_to_torch(checkpoint_io.load_variables(self.irflow)),
        self.irflow_npz)
    # Damaged weights directories: bytes flipped (digests say so) and a
    # corrupt metadata JSON.
    self.damaged = j('damaged_irflow')
    shutil.copytree(self.irflow, self.damaged)
    self.damaged_file = damage(os.path.join(self.damaged, 'variables'))
    self.badmeta = j('badmeta_irflow')
    shutil.copytree(self.irflow, self.badmeta)
    self.badmeta_file = os.path.join(self.badmeta, 'restorect_metadata.json')
    with open(self.badmeta_file, 'w') as f:
      f.write('{"model": "irflow", ')
    # Bad and hostile weight files.
    self.empty_pth, self.empty_npz = j('empty.pth'), j('empty.npz')
    for p in (self.empty_pth, self.empty_npz):
      open(p, 'wb').close()
    self.text_npz, self.text_pth = j('text.npz'), j('text.pth')
    for p in (self.text_npz, self.text_pth):
      with open(p, 'w') as f:
        f.write('conv.weight = [1, 2, 3]\n')
    self.zip_junk_npz = j('junk.npz')
    with open(self.zip_junk_npz, 'wb') as f:
      f.write(b'PK\x03\x04 not really a zip archive')
    self.object_npz = j('object.npz')
    np.savez(self.object_npz, **{'conv.weight': np.array(
        [{'a': 1}], dtype=object)})
    self.hostile = {
        'payload_p2.pth': hostile_pickle(
            j('payload_p2.pth'), self.marker('payload_p2')),
        'payload_p4.pth': hostile_pickle(
            j('payload_p4.pth'), self.marker('payload_p4'), protocol=4,
            payload=_SystemPayload),
        'pickle_as.npz': hostile_pickle(
            j('pickle_as.npz'), self.marker('pickle_as_npz')),
        'pickle_as.ckpt': hostile_pickle(
            j('pickle_as.ckpt'), self.marker('pickle_as_ckpt'),
            payload=_SystemPayload),
    }
    # A torch.save archive holding a NumPy array (a non-tensor global).
    self.torch_numpy_pth = j('torch_numpy.pth')
    import torch  # pylint: disable=g-import-not-at-top
    torch.save({'conv.weight': np.zeros(3)}, self.torch_numpy_pth)
    # Images.
    self.lq, self.gt = j('lq'), j('gt')
    for i in range(2):
      img = _photo(20, 24, i)
      _png(os.path.join(self.gt, f'p{i}.png'), img)
      _png(os.path.join(self.lq, f'p{i}.png'), (img * 0.4).astype(np.uint8))
    self.demo_data = os.path.join(tempfile.gettempdir(),
                                  'restorect_jax_test_demo_data')
    from restorect_jax.data import demo_data  # pylint: disable=g-import-not-at-top
    demo_data.make_demo_pairs(self.demo_data, seed=0)
    self.toy_run, self.toy_damaged = j('toy_run'), j('toy_damaged')
    _toy_checkpoint(self.toy_run)
    shutil.copytree(self.toy_run, self.toy_damaged)
    self.toy_damaged_file = damage(os.path.join(
        checkpointing.checkpoint_dir(self.toy_damaged), '1', 'state'))

  def marker(self, name: str) -> str:
    return os.path.join(self.markers, name)

  def markers_created(self) -> list[str]:
    return os.listdir(self.markers)


def _toy_checkpoint(workdir: str) -> None:
  """A saved run of ``toy_method_test``'s method (one 3x3 convolution)."""
  import optax  # pylint: disable=g-import-not-at-top
  from configs import common  # pylint: disable=g-import-not-at-top
  config = common.base('toy_denoiser', 'demo')
  params = {'model': {'conv': {
      'kernel': np.zeros((3, 3, 3, 3), np.float32),
      'bias': np.zeros((3,), np.float32)}}}
  state = TrainState.create(params, {'main': optax.adam(1e-3)},
                            jax.random.PRNGKey(0))
  ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir))
  ckpt.save(1, state, {}, {'config': json.loads(
      config.to_json_best_effort()), 'method': 'toy_denoiser'})
  ckpt.close()


def setUpModule():
  global F
  sys.path.insert(0, str(testutil.REPO))
  F = Files()


def tearDownModule():
  shutil.rmtree(F.root, ignore_errors=True)


# ----------------------------------------------------------------------------
# Running command lines and checking their errors.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
  """One command line that must fail cleanly.

  Attributes:
    name: the row's name (subTest).
    cli: ``restore``, ``evaluate``, ``convert`` or ``main``.
    args: its arguments.
    status: the expected exit status.
    names: strings the ``error:`` line must contain (file, step, flag).
    env: extra environment variables.
    detail: whether indented detail lines may follow (listings).
  """
  name: str
  cli: str
  args: list[str]
  status: int
  names: tuple[str, ...]
  env: dict[str, str] | None = None
  detail: bool = False


def _run(cli: str, args, env=None, timeout=600):
  return testutil.run_cli(cli, *args, env=env, timeout=timeout)


def _run_cases(cases: list[Case]) -> dict[str, subprocess.CompletedProcess]:
  """Runs the rows concurrently (they fail before any image)."""
  workers = min(4, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    futures = {c.name: pool.submit(_run, c.cli, c.args, c.env) for c in cases}
    return {name: f.result() for name, f in futures.items()}


class ErrorCheck(absltest.TestCase):
  """Assertions on a failed command's output."""

  def assert_one_error(self, stderr: str, status: int, want_status: int,
                       names=(), detail: bool = False) -> str:
    """The run exited ``want_status`` with one error line naming ``names``
    and nothing else on stderr (but indented detail when allowed)."""
    self.assertEqual(status, want_status, stderr[-2000:])
    self.assertNotIn('Traceback', stderr)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    self.assertTrue(lines and lines[0].startswith('error: '), stderr[-2000:])
    if detail:
      self.assertTrue(all(ln.startswith('  ') for ln in lines[1:]), stderr)
      self.assertLessEqual(len(lines), 2 + cli_errors.MAX_DETAIL_LINES)
    else:
      self.assertLen(lines, 1, stderr)
    for name in names:
      self.assertIn(name, lines[0])
    return lines[0]

  def check_cases(self, cases: list[Case]) -> dict[str, str]:
    results = _run_cases(cases)
    lines = {}
    for case in cases:
      r = results[case.name]
      with self.subTest(case.name):
        lines[case.name] = self.assert_one_error(
            r.stderr, r.returncode, case.status, case.names, case.detail)
    self.assertEqual(F.markers_created(), [], 'a payload ran')
    return lines


def _mode(path: str) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


# ----------------------------------------------------------------------------
# restore
# ----------------------------------------------------------------------------


class RestoreTest(ErrorCheck):

  def test_adversarial_images_fail_alone_and_the_rest_is_written(self):
    src = os.path.join(F.root, 'adv')
    good = {'ok.png': _photo(20, 24, 0), 'rgba.png': _photo(20, 24, 1, 4),
            'gray.png': _photo(20, 24, 2, 1)}
    for name, img in good.items():
      _png(os.path.join(src, name), img)
    testutil.write_png16(os.path.join(src, 'sixteen.png'),
                         (_photo(20, 24, 3).astype(np.uint16) * 257))
    bad = {}
    for name, (h, w) in {'px1.png': (1, 1), 'px3.png': (3, 3),
                         'side4.png': (4, 40), 'tall4.png': (40, 4)}.items():
      bad[name] = _png(os.path.join(src, name), _photo(h, w, 4))
    with open(os.path.join(src, 'ok.png'), 'rb') as f:
      head = f.read(60)
    for name, data in (('truncated.png', head), ('empty.png', b''),
                       ('text.png', b'not an image\n')):
      bad[name] = os.path.join(src, name)
      with open(bad[name], 'wb') as f:
        f.write(data)
    os.makedirs(os.path.join(src, 'folder.png'))  # a directory: not listed
    out = os.path.join(F.root, 'adv_out')
    # An output that cannot be written: a directory in the PNG's place.
    bad['blocked.png'] = _png(os.path.join(src, 'blocked.png'),
                              _photo(20, 24, 5))
    os.makedirs(os.path.join(out, 'blocked.png'))
    r = _run('restore', ['--model', 'irflow', '--weights', F.irflow,
                         '--input', src, '--output', out, '--overwrite'])
    self.assertEqual(r.returncode, 1, r.stderr[-3000:])
    self.assertNotIn('Traceback', r.stderr)
    # The summary at the end names each failed file once, with why.
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith('FAILED ')]
    self.assertLen(failed, len(bad), r.stderr[-3000:])
    for name, path in bad.items():
      with self.subTest(name):
        self.assertLen([ln for ln in failed
                        if ln.startswith(f'FAILED {path}: ')], 1)
    self.assertIn('Restored 4 of 12 images', r.stdout)
    written = sorted(n for n in os.listdir(out) if n != 'blocked.png')
    self.assertEqual(written, sorted([*good, 'sixteen.png']))
    for name in written:
      self.assertEqual(_mode(os.path.join(out, name)), _FILE_MODE, name)
      self.assertEqual(np.asarray(Image.open(os.path.join(out, name))).shape,
                       (20, 24, 3))

  def test_non_finite_output_is_never_written(self):
    out = os.path.join(F.root, 'nan_out')
    r = _run('restore', ['--model', 'irflow', '--weights', F.nan_irflow,
                         '--input', F.lq, '--output', out])
    self.assertEqual(r.returncode, 1, r.stderr[-3000:])
    self.assertNotIn('Traceback', r.stderr)
    for i in range(2):
      path = os.path.join(F.lq, f'p{i}.png')
      (line,) = [ln for ln in r.stderr.splitlines()
                 if ln.startswith(f'FAILED {path}:')]
      self.assertIn('non-finite', line)
      self.assertIn(F.nan_irflow, line)
    self.assertEqual(os.listdir(out), [])

  def test_bad_arguments_and_weights(self):
    out = os.path.join(F.root, 'r_out')
    base = ['--input', F.lq, '--output', out]
    irflow = ['--model', 'irflow', '--weights', F.irflow]
    clash = os.path.join(F.root, 'clash')
    _png(os.path.join(clash, 'shot.png'), _photo(20, 24, 0))
    Image.fromarray(_photo(20, 24, 1)).save(os.path.join(clash, 'shot.jpg'))
    empty_dir = os.path.join(F.root, 'empty_in')
    os.makedirs(empty_dir)
    a_file = os.path.join(F.root, 'a_file')
    open(a_file, 'w').close()
    interface = ['--model', 'interface', '--weights', F.interface]
    cases = [
        Case('steps_zero', 'restore', [*irflow, *base, '--rf_steps', '0'], 2,
             ('--rf_steps',)),
        Case('tile_batch_zero', 'restore', [*irflow, *base, '--tile_batch',
                                            '0'], 2, ('--tile_batch',)),
        Case('clashing_outputs', 'restore', [*irflow, '--input', clash,
                                             '--output', out], 1,
             (os.path.join(clash, 'shot.png'),
              os.path.join(clash, 'shot.jpg'))),
        Case('glob_no_match', 'restore', [*irflow, '--input',
                                          os.path.join(F.lq, '*.jpg'),
                                          '--output', out], 1,
             (os.path.join(F.lq, '*.jpg'),)),
        Case('empty_folder', 'restore', [*irflow, '--input', empty_dir,
                                         '--output', out], 1, (empty_dir,)),
        Case('missing_input', 'restore', [*irflow, '--input',
                                          os.path.join(F.root, 'nope'),
                                          '--output', out], 1,
             (os.path.join(F.root, 'nope'),)),
        Case('output_is_a_file', 'restore', [*irflow, '--input', F.lq,
                                             '--output', a_file], 1,
             (a_file,)),
        Case('weights_payload', 'restore', [
            '--model', 'irflow', '--weights', F.hostile['payload_p2.pth'],
            *base], 1, (F.hostile['payload_p2.pth'], 'refused')),
        Case('weights_empty_pth', 'restore', [
            '--model', 'irflow', '--weights', F.empty_pth, *base], 1,
             (F.empty_pth, 'empty')),
        Case('weights_damaged', 'restore', [
            '--model', 'irflow', '--weights', F.damaged, *base], 1,
             (F.damaged_file, 'damaged')),
        Case('weights_bad_metadata', 'restore', [
            '--model', 'irflow', '--weights', F.badmeta, *base], 1,
             (F.badmeta_file,)),
        Case('decom_pickle_as_npz', 'restore', [
            *interface, '--decom', F.hostile['pickle_as.npz'], *base], 1,
             (F.hostile['pickle_as.npz'], 'refused')),
        Case('decom_payload_p4', 'restore', [
            *interface, '--decom', F.hostile['payload_p4.pth'], *base], 1,
             (F.hostile['payload_p4.pth'], 'refused')),
        Case('checkpoint_damaged', 'restore', [
            '--checkpoint', F.toy_damaged, '--imports=toy_method_test',
            *base], 1, ('step 1', F.toy_damaged_file)),
    ]
    self.check_cases(cases)
    self.assertFalse(os.path.exists(os.path.join(out, 'p0.png')))

  def test_help_lists_model_and_data_flags(self):
    r = _run('restore', ['--help'])
    self.assertEqual(r.returncode, 0, r.stderr)
    for flag in ('--checkpoint', '--weights', '--model', '--decom',
                 '--input', '--output', '--rf_steps', '--tile'):
      self.assertIn(flag, r.stdout)


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------


class EvaluateTest(ErrorCheck):

  def test_failing_images_are_named_and_the_scored_rows_kept(self):
    lq, gt = os.path.join(F.root, 'ev_lq'), os.path.join(F.root, 'ev_gt')
    for name in ('a', 'b', 'c', 'd', 'e'):
      img = _photo(20, 24, ord(name))
      _png(os.path.join(gt, name + '.png'), img)
      _png(os.path.join(lq, name + '.png'), (img * 0.5).astype(np.uint8))
    _png(os.path.join(gt, 'c.png'), _photo(20, 28, 0))  # size mismatch
    with open(os.path.join(lq, 'd.png'), 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n truncated')
    _png(os.path.join(lq, 'e.png'), _photo(1, 1, 0))
    _png(os.path.join(gt, 'e.png'), _photo(1, 1, 0))
    out = os.path.join(F.root, 'ev_out')
    # b is scored but its restored image cannot be saved.
    os.makedirs(os.path.join(out, 'images', 'steps1_seedNone', 'b.png'))
    r = _run('evaluate', ['--model', 'irflow', '--weights', F.irflow,
                          '--lq_dir', lq, '--gt_dir', gt, '--rf_steps', '1,2',
                          '--extra_metrics', 'none', '--save_images',
                          '--output_dir', out])
    self.assertEqual(r.returncode, 1, r.stderr[-3000:])
    self.assertNotIn('Traceback', r.stderr)
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith('FAILED ')]
    want = {'b': 'not saved', 'c': 'size mismatch', 'd': 'd.png',
            'e': 'too small'}
    self.assertLen(failed, len(want), r.stderr[-3000:])
    for name, what in want.items():
      (line,) = [ln for ln in failed
                 if ln.startswith(f'FAILED {os.path.join(lq, name)}.png:')]
      self.assertIn(what, line)
    self.assertIn(os.path.join(gt, 'c.png'), r.stderr)
    with open(os.path.join(out, 'per_image.jsonl')) as f:
      rows = [json.loads(ln) for ln in f]
    self.assertEqual(sorted((x['image'], x['rf_steps']) for x in rows),
                     [('a', 1), ('a', 2), ('b', 1), ('b', 2)])
    with open(os.path.join(out, 'summary.json')) as f:
      self.assertLen(json.load(f)['failed'], len(want))
    for name in ('per_image.csv', 'summary.json',
                 'steps_vs_psnr.png', 'images/steps1_seedNone/a.png'):
      self.assertEqual(_mode(os.path.join(out, name)), _FILE_MODE, name)

  def test_bad_arguments_and_weights_fail_before_any_image(self):
    out = os.path.join(F.root, 'e_out')
    data = ['--lq_dir', F.lq, '--gt_dir', F.gt, '--output_dir', out]
    irflow = ['--model', 'irflow', '--weights', F.irflow]
    interface = ['--model', 'interface', '--weights', F.interface]
    lpips_dir = os.path.join(F.root, 'lpips_weights')
    os.makedirs(lpips_dir)
    hostile_pickle(os.path.join(lpips_dir, 'alexnet.ckpt'),
                   F.marker('lpips'))
    empty_dir = os.path.join(F.root, 'e_empty')
    os.makedirs(empty_dir)
    a_file = os.path.join(F.root, 'e_file')
    open(a_file, 'w').close()
    missing_fid = os.path.join(F.root, 'no_inception.pth')
    cases = [
        Case('steps_zero', 'evaluate', [*irflow, *data, '--rf_steps', '0'],
             2, ('--rf_steps',)),
        Case('steps_not_int', 'evaluate', [*irflow, *data, '--rf_steps',
                                           'x'], 2, ('--rf_steps',)),
        Case('weights_empty_npz', 'evaluate', [
            '--model', 'irflow', '--weights', F.empty_npz, *data], 1,
             (F.empty_npz, 'empty')),
        Case('weights_text_npz', 'evaluate', [
            '--model', 'irflow', '--weights', F.text_npz, *data], 1,
             (F.text_npz, 'not an .npz')),
        Case('weights_object_npz', 'evaluate', [
            '--model', 'irflow', '--weights', F.object_npz, *data], 1,
             (F.object_npz, 'object array')),
        Case('weights_payload_p4', 'evaluate', [
            '--model', 'irflow', '--weights', F.hostile['payload_p4.pth'],
            *data], 1, (F.hostile['payload_p4.pth'], 'refused')),
        Case('decom_payload', 'evaluate', [
            *interface, '--decom', F.hostile['payload_p2.pth'], *data], 1,
             (F.hostile['payload_p2.pth'], 'refused')),
        Case('decom_wrong_model', 'evaluate', [
            *interface, '--decom', F.irflow_npz, *data], 1,
             (F.irflow_npz, 'does not match'), None, True),
        Case('fid_weights_payload', 'evaluate', [
            *irflow, *data, '--extra_metrics', 'fid', '--fid_weights',
            F.hostile['payload_p2.pth']], 1,
             (F.hostile['payload_p2.pth'], 'refused')),
        Case('fid_weights_missing', 'evaluate', [
            *irflow, *data, '--extra_metrics', 'fid', '--fid_weights',
            missing_fid], 1, (missing_fid,)),
        Case('lpips_weights_payload', 'evaluate', [
            *irflow, *data, '--extra_metrics', 'lpips_alex'], 1,
             (os.path.join(lpips_dir, 'alexnet.ckpt'), 'refused'),
             {'RESTORECT_LPIPS_WEIGHTS_DIR': lpips_dir}),
        Case('unknown_metric', 'evaluate', [
            *irflow, *data, '--extra_metrics', 'psnrr'], 1, ('psnrr',)),
        Case('checkpoint_damaged', 'evaluate', [
            '--checkpoint', F.toy_damaged, '--imports=toy_method_test',
            *data], 1, ('step 1', F.toy_damaged_file)),
        Case('empty_lq_dir', 'evaluate', [
            *irflow, '--lq_dir', empty_dir, '--output_dir', out], 2,
             (empty_dir,)),
        Case('output_dir_is_a_file', 'evaluate', [
            *irflow, '--lq_dir', F.lq, '--output_dir', a_file], 1,
             (a_file,)),
    ]
    self.check_cases(cases)
    # Nothing was scored: every check ran before the first image.
    self.assertFalse(os.path.exists(os.path.join(out, 'per_image.jsonl')))

  def test_help_lists_model_and_data_flags(self):
    r = _run('evaluate', ['--help'])
    self.assertEqual(r.returncode, 0, r.stderr)
    for flag in ('--checkpoint', '--weights', '--model', '--decom',
                 '--lq_dir', '--gt_dir', '--dataset', '--data_dir',
                 '--fid_weights', '--output_dir'):
      self.assertIn(flag, r.stdout)


# ----------------------------------------------------------------------------
# convert (in process: its main() is the CLI; one row also as a subprocess)
# ----------------------------------------------------------------------------


class ConvertTest(ErrorCheck):

  def _convert(self, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(
        io.StringIO()):
      try:
        status = convert.main(list(args))
      except SystemExit as e:
        status = e.code
    return status, err.getvalue()

  def test_every_bad_input_is_one_line(self):
    out = os.path.join(F.root, 'c_out')
    rows = [
        ('empty_pth', F.empty_pth, 'irflow', 1, ('empty',)),
        ('empty_npz', F.empty_npz, 'irflow', 1, ('empty',)),
        ('text_npz', F.text_npz, 'irflow', 1, ('not an .npz',)),
        ('text_pth', F.text_pth, 'irflow', 1, ('not a PyTorch',)),
        ('junk_zip_npz', F.zip_junk_npz, 'irflow', 1, ('.npz',)),
        ('object_npz', F.object_npz, 'irflow', 1, ('object array',)),
        ('torch_zip_numpy_global', F.torch_numpy_pth, 'irflow', 1,
         ('refused', 'numpy')),
        ('payload_p2', F.hostile['payload_p2.pth'], 'irflow', 1,
         ('refused',)),
        ('payload_p4', F.hostile['payload_p4.pth'], 'irflow', 1,
         ('refused',)),
        ('pickle_as_npz', F.hostile['pickle_as.npz'], 'irflow', 1,
         ('refused',)),
        ('wrong_model', F.irflow_npz, 'decomnet', 1, ('does not match',)),
        ('damaged_dir', F.damaged, 'irflow', 1, (F.damaged_file,)),
        ('bad_metadata_dir', F.badmeta, 'irflow', 1, (F.badmeta_file,)),
        ('missing', os.path.join(F.root, 'nope.pth'), 'irflow', 1,
         ('nope.pth',)),
    ]
    variants = {'irflow': 'tiny', 'decomnet': 'default'}
    for name, src, model, status, names in rows:
      with self.subTest(name):
        code, err = self._convert('--model', model, '--variant',
                                  variants[model],
                                  '--input', src, '--output',
                                  os.path.join(out, name + '.npz'))
        self.assert_one_error(err, code, status, (src, *names),
                              detail=name == 'wrong_model')
        self.assertFalse(os.path.exists(os.path.join(out, name + '.npz')))
    self.assertEqual(F.markers_created(), [], 'a payload ran')

  def test_overwrite(self):
    flax_dir = os.path.join(F.root, 'c_flax')
    args = ['--model', 'irflow', '--variant', 'tiny', '--input', F.irflow_npz,
            '--output', flax_dir]
    self.assertEqual(self._convert(*args)[0], 0)
    code, err = self._convert(*args)
    self.assert_one_error(err, code, 2, (flax_dir, '--overwrite'))
    # --overwrite replaces the directory with the new conversion.
    zeros = os.path.join(F.root, 'zeros.npz')
    sd = convert.load_state_dict(F.irflow_npz)
    convert.save_state_dict({k: np.zeros_like(v) for k, v in sd.items()},
                            zeros)
    self.assertEqual(self._convert(*args[:-3], zeros, '--output', flax_dir,
                                   '--overwrite')[0], 0)
    got = checkpoint_io.load_variables(flax_dir)
    self.assertFalse(any(np.any(x) for x in jax.tree.leaves(got)))
    self.assertEqual(_mode(zeros), _FILE_MODE)
    # A folder the converter did not write is never replaced.
    photos = os.path.join(F.root, 'photos')
    _png(os.path.join(photos, 'keep.png'), _photo(4, 4, 0))
    code, err = self._convert(*args[:-1], photos, '--overwrite')
    self.assert_one_error(err, code, 1, (photos,))
    self.assertTrue(os.path.exists(os.path.join(photos, 'keep.png')))

  def test_command_line(self):
    r = _run('convert', ['--model', 'irflow', '--input',
                         F.hostile['pickle_as.ckpt'], '--output',
                         os.path.join(F.root, 'c_cli')])
    self.assert_one_error(r.stderr, r.returncode, 1,
                          (F.hostile['pickle_as.ckpt'], 'refused'))
    r = _run('convert', ['--model', 'irflow', '--input', F.empty_pth,
                         '--output', os.path.join(F.root, 'c_cli'),
                         '--verbosity', '1'])
    self.assertIn('Traceback', r.stderr)  # asked for
    self.assertEqual(F.markers_created(), [])


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


class MainTest(ErrorCheck):

  def test_bad_configs_and_weights(self):
    wd = os.path.join(F.root, 'm_run')
    s1 = ['--config', 'configs/restorect_s1.py:dataset=demo,runlocal',
          f'--config.input.data_dir={F.demo_data}', '--workdir', wd]
    cases = [
        Case('config_key_typo', 'main', [*s1, '--config.optim.lrr=1'], 2,
             ('--config.optim.lrr', 'Did you mean "lr"')),
        Case('config_value', 'main', [*s1, '--config.optim.lr=abc'], 2,
             ('--config.optim.lr=abc',)),
        Case('config_arg_typo', 'main', [
            '--config', 'configs/restorect_s1.py:datset=demo', '--workdir',
            wd], 2, ('datset',)),
        Case('config_file_missing', 'main', [
            '--config', 'configs/nope.py', '--workdir', wd], 2,
             ('configs/nope.py',)),
        Case('total_steps_zero', 'main', [*s1, '--config.total_steps=0'], 2,
             ('--config.total_steps=0',)),
        Case('rf_steps_negative', 'main', [*s1, '--config.rf_steps=-1'], 2,
             ('--config.rf_steps=-1',)),
        Case('decom_payload', 'main', [
            *s1, f'--config.decom_init.low={F.hostile["payload_p2.pth"]}'],
             1, (F.hostile['payload_p2.pth'], 'refused')),
        Case('decom_wrong_model', 'main', [
            *s1, f'--config.decom_init.low={F.irflow_npz}'], 1,
             (F.irflow_npz, 'does not match'), None, True),
    ]
    self.check_cases(cases)
    self.assertFalse(os.path.exists(os.path.join(wd, 'checkpoints')))
    # The traceback is there when asked for.
    r = _run('main', [*s1, '--config.optim.lrr=1', '--verbosity=1'])
    self.assertNotEqual(r.returncode, 0)
    self.assertIn('Traceback', r.stderr)


# ----------------------------------------------------------------------------
# The loaders behind those flags, for every bad or hostile file.
# ----------------------------------------------------------------------------


class LoadersTest(ErrorCheck):
  """Every weight-reading path refuses every bad file with one line."""

  def _bad_files(self):
    return {**F.hostile, 'empty.pth': F.empty_pth, 'empty.npz': F.empty_npz,
            'text.npz': F.text_npz, 'text.pth': F.text_pth,
            'object.npz': F.object_npz, 'junk.npz': F.zip_junk_npz,
            'torch_numpy.pth': F.torch_numpy_pth}

  def _assert_refused(self, fn, path):
    with self.assertRaises(cli_errors.USER_ERRORS) as cm:
      fn()
    lines = cli_errors.message(cm.exception)
    self.assertLen(lines, 1, lines)
    self.assertIn(path, lines[0])

  def test_model_weights_decom_and_main_decom(self):
    from restorect_jax.methods.restorect import method as restorect_method  # pylint: disable=g-import-not-at-top
    for name, path in self._bad_files().items():
      with self.subTest(name):
        # restore / evaluate --weights, --decom; main's decom_init.low.
        self._assert_refused(
            lambda p=path: loading.from_weights('irflow', p, variant='tiny'),
            path)
        self._assert_refused(
            lambda p=path: loading.from_weights(
                'interface', F.interface, decom=p), path)
        self._assert_refused(
            lambda p=path: restorect_method.load_decom(p, 1, 'low'), path)
    self.assertEqual(F.markers_created(), [], 'a payload ran')

  def test_extra_metric_weights(self):
    from restorect_jax.evaluation.iqa import brisque  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import lpips  # pylint: disable=g-import-not-at-top
    from restorect_jax.evaluation.iqa import niqe  # pylint: disable=g-import-not-at-top
    standard = protocols_lib.get('standard')

    def preload(names, fid_weights=''):
      reqs = extra_metrics.requests_for(standard, True, names)
      extra = extra_metrics.ExtraMetrics({'standard': reqs}, fid_weights)
      extra.preload()
      return extra

    lpips_dir = os.path.join(F.root, 'l_lpips')
    os.makedirs(lpips_dir)
    table = (
        (niqe.ENV_VAR, 'niqe', self._bad_files()),
        (brisque.ENV_VAR, 'brisque', {'p': F.hostile['payload_p2.pth'],
                                      't': F.text_pth}),
        (lpips.ENV_VAR, 'lpips_alex', {'p': F.hostile['pickle_as.ckpt'],
                                       'e': F.empty_pth}))
    for env, metric, files in table:
      for name, path in files.items():
        with self.subTest(f'{metric}:{name}'):
          target, value = path, path
          if metric == 'lpips_alex':  # the variable names a folder
            target = os.path.join(lpips_dir, 'alexnet.ckpt')
            shutil.copy(path, target)
            value = lpips_dir
            lpips.get_lpips.cache_clear()
          with mock.patch.dict(os.environ, {env: value}):
            self._assert_refused(lambda m=metric: preload(m), target)
    for name, path in self._bad_files().items():
      with self.subTest(f'fid:{name}'):
        self._assert_refused(lambda p=path: preload('fid', p), path)
    missing = os.path.join(F.root, 'missing_inception.pth')
    with self.assertRaisesRegex(FileNotFoundError, re.escape(missing)):
      preload('fid', missing)
    self.assertEqual(F.markers_created(), [], 'a payload ran')

  def test_missing_metric_weights_are_unavailable_not_fatal(self):
    from restorect_jax.evaluation.iqa import niqe  # pylint: disable=g-import-not-at-top
    reqs = extra_metrics.requests_for(protocols_lib.get('standard'), True,
                                      'niqe,uciqe')
    extra = extra_metrics.ExtraMetrics({'standard': reqs})
    common = niqe._common  # pylint: disable=protected-access
    with mock.patch.dict(os.environ, {niqe.ENV_VAR: ''}), mock.patch.object(
        common, 'package_file', lambda *a: None):
      with contextlib.redirect_stderr(io.StringIO()):
        extra.preload()
    self.assertIn('niqe', extra.unavailable)
    self.assertNotIn('uciqe', extra.unavailable)


if __name__ == '__main__':
  absltest.main()
