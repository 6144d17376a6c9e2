"""Checkpoint integrity: digests of the finished files, verified on load.

A byte flipped inside a saved checkpoint (same size, so nothing but a
digest can tell) must make inference refuse it with one line naming the
step and the file, and make a resumed training run fall back to the
previous good step. Checkpoints written before digests existed still load.
The end-to-end case trains the one-convolution method of
``toy_method_test`` through ``python -m restorect_jax.main``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap

from absl.testing import absltest
import jax
import numpy as np
import optax

from restorect_jax.core import checkpoint_io
from restorect_jax.core import checkpointing
from restorect_jax.core.train_state import TrainState
import testutil


damage = testutil.damage


def _state(value: float) -> TrainState:
  params = {'w': np.full((64, 64), value, np.float32),
            'b': np.zeros((64,), np.float32)}
  return TrainState.create(params, {'main': optax.adam(1e-3)},
                           jax.random.PRNGKey(0))


def _saved_run(steps=(1, 2)) -> tuple[str, checkpointing.Checkpointer]:
  workdir = tempfile.mkdtemp()
  ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir),
                                    max_to_keep=5)
  for step in steps:
    ckpt.save(step, _state(float(step)), {'pos': step}, {'step': step})
  ckpt.close()
  return workdir, checkpointing.Checkpointer(
      checkpointing.checkpoint_dir(workdir), max_to_keep=5)


class DigestTest(absltest.TestCase):

  def test_digests_are_of_the_finished_files(self):
    workdir, _ = _saved_run()
    with open(os.path.join(workdir, 'checkpoint_digests.json')) as f:
      digests = json.load(f)
    self.assertEqual(sorted(digests), ['1', '2'])
    for step, want in digests.items():
      step_dir = os.path.join(checkpointing.checkpoint_dir(workdir), step)
      # Every final file, Orbax's commit markers included, and no
      # temporary name (the async save had finished when they were taken).
      self.assertEqual(want, checkpoint_io.file_digests(step_dir))
      self.assertIn('_CHECKPOINT_METADATA', want)
      self.assertFalse(any('tmp' in rel for rel in want), want)

  def test_damaged_step_is_refused_naming_step_and_file(self):
    workdir, ckpt = _saved_run()
    bad = damage(os.path.join(ckpt.directory, '2'))
    with self.assertRaises(checkpointing.CheckpointIntegrityError) as cm:
      checkpointing.load_params(workdir)
    msg = str(cm.exception)
    self.assertIn('step 2', msg)
    self.assertIn(bad, msg)
    self.assertNotIn('\n', msg)
    with self.assertRaisesRegex(checkpointing.CheckpointIntegrityError,
                                'step 2'):
      ckpt.restore(_state(0.0), 2)
    # The previous step is untouched.
    params, meta = checkpointing.load_params(workdir, step=1)
    self.assertEqual(meta['step'], 1)
    np.testing.assert_array_equal(params['w'], np.full((64, 64), 1.0))

  def test_resume_falls_back_to_the_previous_good_step(self):
    workdir, ckpt = _saved_run((1, 2, 3))
    damage(os.path.join(ckpt.directory, '3'))
    with self.assertLogs(level='WARNING') as logs:
      state, data = ckpt.restore_latest_good(_state(0.0), {})
    self.assertEqual(int(state.step), 0)  # _state() is at step 0
    np.testing.assert_array_equal(state.params['w'], np.full((64, 64), 2.0))
    self.assertEqual(data, {'pos': 2})
    text = '\n'.join(logs.output)
    self.assertIn('step 3', text)
    self.assertIn('Falling back to the previous checkpoint', text)
    # The damaged step is set aside, so the run can save step 3 again.
    self.assertEqual(ckpt.all_steps(), [1, 2])
    self.assertLen(os.listdir(os.path.join(workdir, 'checkpoints_damaged')),
                   1)
    ckpt.save(3, _state(3.5), {'pos': 3}, {})
    ckpt.close()
    params, _ = checkpointing.load_params(workdir)
    np.testing.assert_array_equal(params['w'], np.full((64, 64), 3.5))

  def test_every_step_damaged_starts_fresh(self):
    workdir, ckpt = _saved_run((1,))
    damage(os.path.join(ckpt.directory, '1'))
    with self.assertLogs(level='WARNING'):
      state, data = ckpt.restore_latest_good(_state(7.0), {})
    self.assertIsNone(data)
    np.testing.assert_array_equal(state.params['w'], np.full((64, 64), 7.0))
    del workdir

  def test_resume_warns_when_the_recorded_provenance_changed(self):
    for key in ('provenance', 'teacher'):  # 'teacher': older checkpoints
      workdir = tempfile.mkdtemp()
      ckpt = checkpointing.Checkpointer(
          checkpointing.checkpoint_dir(workdir), max_to_keep=5)
      ckpt.save(1, _state(1.0), {'pos': 1},
                {key: {'path': '/s1', 'sha256': 'aaa'}})
      ckpt.close()
      same = {'provenance': {'path': '/s1', 'sha256': 'aaa'}}
      with self.assertNoLogs(level='WARNING'):
        ckpt.restore_latest_good(_state(0.0), same)
      changed = {'provenance': {'path': '/s1', 'sha256': 'bbb'}}
      with self.assertLogs(level='WARNING') as logs:
        state, _ = ckpt.restore_latest_good(_state(0.0), changed)
      self.assertIn('changed since it started', logs.output[0])
      self.assertIn('aaa', logs.output[0])
      self.assertIn('bbb', logs.output[0])
      np.testing.assert_array_equal(state.params['w'], np.full((64, 64), 1.0))

  def test_checkpoints_without_digests_still_load(self):
    workdir, _ = _saved_run()
    os.remove(os.path.join(workdir, 'checkpoint_digests.json'))
    params, meta = checkpointing.load_params(workdir)
    self.assertEqual(meta['step'], 2)
    np.testing.assert_array_equal(params['w'], np.full((64, 64), 2.0))

  def test_weights_directory_digests(self):
    root = tempfile.mkdtemp()
    path = os.path.join(root, 'w')
    variables = {'params': {'conv': {'kernel': np.arange(
        4096, dtype=np.float32).reshape(8, 8, 8, 8)}}}
    checkpoint_io.save_variables(variables, path, metadata={'model': 'x'})
    self.assertEqual(sorted(os.listdir(root)), ['w'])  # no .partial left
    np.testing.assert_array_equal(
        checkpoint_io.load_variables(path)['params']['conv']['kernel'],
        variables['params']['conv']['kernel'])
    backup = os.path.join(root, 'backup')
    shutil.copytree(path, backup)
    bad = damage(os.path.join(path, 'variables'))
    with self.assertRaises(checkpoint_io.CheckpointIntegrityError) as cm:
      checkpoint_io.load_variables(path)
    self.assertIn(bad, str(cm.exception))
    # Written before digests existed: loads unchecked.
    os.remove(os.path.join(backup, 'restorect_digests.json'))
    self.assertLen(jax.tree.leaves(checkpoint_io.load_variables(backup)), 1)

  def test_overwrite_replaces_only_weights_directories(self):
    root = tempfile.mkdtemp()
    path = os.path.join(root, 'w')
    variables = {'params': {'b': np.ones((3,), np.float32)}}
    checkpoint_io.save_variables(variables, path)
    with self.assertRaises(FileExistsError):
      checkpoint_io.save_variables(variables, path)
    checkpoint_io.save_variables({'params': {'b': np.zeros((3,))}}, path,
                                 overwrite=True)
    np.testing.assert_array_equal(
        checkpoint_io.load_variables(path)['params']['b'], np.zeros(3))
    other = os.path.join(root, 'photos')
    os.makedirs(other)
    with open(os.path.join(other, 'keep.jpg'), 'w') as f:
      f.write('x')
    with self.assertRaisesRegex(FileExistsError, 'not a weights directory'):
      checkpoint_io.save_variables(variables, other, overwrite=True)
    self.assertTrue(os.path.exists(os.path.join(other, 'keep.jpg')))


_CONFIG = '''
from configs import common


def get_config(arg=None):
  c = common.base('toy_denoiser', 'demo')
  c.optim = common.Config(dict(lr=1e-2, ema_decay=0.5))
  c.input.update(dict(patch_size=16, batch_size=2, mini_batch_sizes=(2,),
                      gt_sizes=(16,), stage_steps=(100,)))
  c.total_steps = int(arg or 4)
  c.ckpt_steps = 2
  c.keep_ckpts = 10
  c.log_training_steps = 1
  c.eval_steps = 0
  c.evals.max_images = 1
  c.mesh.num_devices = 1
  return c
'''


def _run(module, *args):
  return testutil.run_cli(module, *args)


class ResumeThroughMainTest(absltest.TestCase):
  """``main`` resumes past a damaged latest step; ``restore`` refuses it."""

  def test_damaged_latest_checkpoint(self):
    root = tempfile.mkdtemp()
    cfg = os.path.join(root, 'cfgs', 'configs_toy.py')
    os.makedirs(os.path.dirname(cfg))
    with open(cfg, 'w') as f:
      f.write(textwrap.dedent(_CONFIG))
    wd = os.path.join(root, 'run')
    r = _run('main', f'--config={cfg}:4', f'--workdir={wd}',
             '--imports=toy_method_test')
    self.assertEqual(r.returncode, 0, r.stderr[-3000:])
    ckpts = checkpointing.checkpoint_dir(wd)
    self.assertEqual(sorted(os.listdir(ckpts)), ['2', '4'])
    bad = damage(os.path.join(ckpts, '4', 'state'))

    # Inference refuses the damaged step: one line naming step and file.
    lq = os.path.join(wd, 'demo_data', 'test', 'low')
    r = _run('restore', f'--checkpoint={wd}', '--imports=toy_method_test',
             f'--input={lq}', f'--output={os.path.join(root, "out")}')
    self.assertEqual(r.returncode, 1, r.stderr[-3000:])
    self.assertNotIn('Traceback', r.stderr)
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith('error:')]
    self.assertIn('step 4', line)
    self.assertIn(bad, line)
    self.assertEqual(os.listdir(os.path.join(root, 'out')), [])

    # Training resumes from step 2 with one warning, then saves 4 and 6.
    r = _run('main', f'--config={cfg}:6', f'--workdir={wd}',
             '--imports=toy_method_test')
    self.assertEqual(r.returncode, 0, r.stderr[-3000:])
    self.assertNotIn('Traceback', r.stderr)
    warn = [ln for ln in r.stderr.splitlines()
            if 'Falling back to the previous checkpoint' in ln]
    self.assertLen(warn, 1, r.stderr[-3000:])
    self.assertIn('step 4', warn[0])
    self.assertEqual(sorted(os.listdir(ckpts)), ['2', '4', '6'])
    (aside,) = os.listdir(os.path.join(wd, 'checkpoints_damaged'))
    self.assertTrue(aside.startswith('4-'))
    _, meta = checkpointing.load_params(wd)
    self.assertEqual(meta['step'], 6)
    checkpointing.load_params(wd, step=4)  # the re-saved step verifies
    from restorect_jax.core import metric_writers  # pylint: disable=g-import-not-at-top
    steps = [row['step'] for row in metric_writers.read_jsonl(
        os.path.join(wd, 'metrics.jsonl')) if 'train/loss' in row]
    self.assertEqual(steps, [1, 2, 3, 4, 5, 6])


if __name__ == '__main__':
  absltest.main()
