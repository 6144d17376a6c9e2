"""Resumable runs: SIGKILL mid-training, resume, same parameters; bad runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from restorect_jax import datasets
from restorect_jax import train
from restorect_jax.core import checkpointing
from restorect_jax.core import train_step
from restorect_jax.data import demo_data
import testutil

sys.path.insert(0, str(testutil.REPO))
from configs import restorect_s1  # noqa: E402  pylint: disable=g-import-not-at-top

_TOTAL = 10


def _data_dir() -> str:
  d = os.path.join(tempfile.gettempdir(), 'restorect_jax_test_demo_data')
  demo_data.make_demo_pairs(d, seed=0)
  return d


def _cmd(workdir: str) -> list[str]:
  return [sys.executable, '-m', 'restorect_jax.main',
          '--config', 'configs/restorect_s1.py:dataset=demo,runlocal',
          f'--config.input.data_dir={_data_dir()}',
          f'--config.total_steps={_TOTAL}', '--config.ckpt_steps=2',
          '--config.keep_ckpts=10', '--config.input.stage_steps=(4, 100)',
          f'--workdir={workdir}']


def _leaves(tree):
  return jax.tree.leaves(jax.tree.map(np.asarray, tree))


class KillAndResumeTest(absltest.TestCase):

  def test_sigkill_then_resume_equals_uninterrupted_run(self):
    root = tempfile.mkdtemp()
    straight, killed = os.path.join(root, 'a'), os.path.join(root, 'b')
    res = subprocess.run(_cmd(straight), cwd=testutil.REPO,
                         capture_output=True, text=True, check=False)
    self.assertEqual(res.returncode, 0, res.stderr[-3000:])

    proc = subprocess.Popen(_cmd(killed), cwd=testutil.REPO,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt4 = os.path.join(killed, 'checkpoints', '4')
    deadline = time.time() + 600
    while not os.path.isdir(ckpt4) and proc.poll() is None and (
        time.time() < deadline):
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    self.assertEqual(proc.returncode, -signal.SIGKILL)
    steps_at_kill = checkpointing.Checkpointer(
        checkpointing.checkpoint_dir(killed)).all_steps()
    self.assertIn(4, steps_at_kill)
    self.assertLess(max(steps_at_kill), _TOTAL, 'the run finished before '
                    'it was killed; the test proves nothing')

    res = subprocess.run(_cmd(killed), cwd=testutil.REPO,
                         capture_output=True, text=True, check=False)
    self.assertEqual(res.returncode, 0, res.stderr[-3000:])
    for which in ('params', 'ema_params'):
      a, meta_a = checkpointing.load_params(straight, which=which)
      b, meta_b = checkpointing.load_params(killed, which=which)
      self.assertEqual(meta_a['step'], _TOTAL)
      self.assertEqual(meta_b['step'], _TOTAL)
      self.assertEqual(jax.tree.structure(a), jax.tree.structure(b))
      for x, y in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(x, y)
    # The step-10 checkpoints also hold the same data-iterator position.
    self.assertEqual(
        sorted(os.listdir(os.path.join(straight, 'checkpoints'))),
        sorted(os.listdir(os.path.join(killed, 'checkpoints'))))


class LoopTest(absltest.TestCase):

  def _config(self, total=6):
    c = restorect_s1.get_config('dataset=demo,runlocal')
    c.input.data_dir = _data_dir()
    c.total_steps = total
    c.evals.max_images = 1
    return c

  def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(self):
    wd = tempfile.mkdtemp()
    real = train_step.jit_phases

    def poisoned(*args, **kwargs):
      fns = real(*args, **kwargs)
      def wrap(fn):
        def step(state, batch, frozen):
          new, metrics = fn(state, batch, frozen)
          if int(new.step) >= 3:
            metrics = dict(metrics, loss=jnp.asarray(jnp.nan))
          return new, metrics
        return step
      return {k: wrap(f) for k, f in fns.items()}

    with mock.patch.object(train_step, 'jit_phases', poisoned):
      with self.assertRaisesRegex(train.NonFiniteLossError,
                                  r'at step 3[\s\S]*last good checkpoint is '
                                  r'step 2'):
        train.train_and_evaluate(self._config(), wd)
    ckpt = checkpointing.Checkpointer(checkpointing.checkpoint_dir(wd))
    self.assertEqual(ckpt.all_steps(), [2])
    params, meta = checkpointing.load_params(wd)
    self.assertEqual(meta['step'], 2)
    for leaf in _leaves(params):
      self.assertTrue(np.isfinite(leaf).all())

  def test_logs_and_artifacts(self):
    wd = tempfile.mkdtemp()
    res = train.train_and_evaluate(self._config(total=2), wd)
    self.assertEqual((res['step'], res['method'], res['n']),
                     (2, 'restorect', 1))
    self.assertIn('psnr', res['standard'])
    from restorect_jax.core import metric_writers  # pylint: disable=g-import-not-at-top
    rows = metric_writers.read_jsonl(os.path.join(wd, 'metrics.jsonl'))
    train_rows = [r for r in rows if 'train/loss' in r]
    self.assertEqual([r['step'] for r in train_rows], [1, 2])
    for key in ('train/loss_l1', 'train/loss_hvi', 'train/l2_grads',
                'train/lr'):
      self.assertIn(key, train_rows[0])
    self.assertTrue(any('eval/standard/psnr' in r for r in rows))
    self.assertTrue(os.listdir(os.path.join(wd, 'tensorboard')))
    self.assertTrue(any(f.startswith('eval_lq_out_gt') for f in
                        os.listdir(os.path.join(wd, 'images'))))
    self.assertTrue(os.path.isfile(os.path.join(wd, 'config.json')))
    _, meta = checkpointing.load_params(wd)
    self.assertEqual(meta['config']['stage'], 's1')
    self.assertEqual(meta['config']['method'], 'restorect')

  def test_eval_last_off_skips_the_final_evaluation(self):
    # The demo evaluates both stages itself (config.eval_last=False).
    c = self._config(total=1)
    c.eval_last = False
    wd = tempfile.mkdtemp()
    for _ in range(2):  # a fresh run, then the finished run resumed
      self.assertEqual(train.train_and_evaluate(c, wd), {})
      self.assertFalse(os.path.exists(os.path.join(wd, 'eval.json')))
    c.eval_last = True  # resuming the finished run with it on evaluates
    self.assertEqual(train.train_and_evaluate(c, wd)['step'], 1)


class CliTest(absltest.TestCase):

  def _run(self, *args):
    return subprocess.run([sys.executable, '-m', 'restorect_jax.main', *args],
                          cwd=testutil.REPO, capture_output=True, text=True,
                          check=False)

  def test_help(self):
    res = self._run('--helpfull')
    # absl's help flags print the usage and exit with status 1.
    self.assertNotIn('Traceback', res.stderr)
    for flag in ('--config', '--workdir', '--mode'):
      self.assertIn(flag, res.stdout)

  def test_config_typo_fails(self):
    res = self._run('--config', 'configs/restorect_s1.py:runlocal',
                    '--config.optim.lrr=1e-3', '--workdir',
                    tempfile.mkdtemp())
    self.assertNotEqual(res.returncode, 0)
    self.assertIn('lrr', res.stderr)

  def test_unknown_config_arg_fails(self):
    res = self._run('--config', 'configs/restorect_s1.py:datset=lol_v1',
                    '--workdir', tempfile.mkdtemp())
    self.assertNotEqual(res.returncode, 0)
    self.assertIn('datset', res.stderr)


class ConfigsTest(absltest.TestCase):

  def test_every_config_loads(self):
    import importlib.util  # pylint: disable=g-import-not-at-top
    cfg_dir = testutil.REPO / 'configs'
    experiments = [p for p in sorted(cfg_dir.glob('*.py'))
                   if p.stem not in ('__init__', 'common')]
    self.assertIn('restorect_s1', [p.stem for p in experiments])
    for path in experiments:
      spec = importlib.util.spec_from_file_location(path.stem, path)
      mod = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(mod)
      self.assertIn('Command', mod.__doc__ or '', path.name) if (
          path.stem != 'demo') else None
      for arg in (None, 'runlocal') if path.stem != 'demo' else (
          'stage=s1', 'stage=s2'):
        c = mod.get_config(arg)
        self.assertIn(c.stage, ('s1', 's2', 'irflow'))
        self.assertEqual(c.method,
                         'irflow' if c.stage == 'irflow' else 'restorect')
        if c.stage == 'irflow':
          self.assertIn('msc_mode', c.irflow)
        else:
          self.assertIn('kd_gradient', c.switches)

  def test_irflow_tasks_name_registered_datasets(self):
    # Each IR-Flow task trains on a dataset of the registry, and the noise
    # the loss adds (irflow.noise_sigma, the task table's σ) and the
    # evaluation's (evals.noise_sigma) are the dataset's synthetic σ
    # (25/255 for the 'clean' denoising sets, 0 for stored inputs).
    from configs import irflow  # pylint: disable=g-import-not-at-top
    for task in ('derain', 'raindrop', 'denoise', 'dehaze', 'deblur', 'sr',
                 'demo'):
      c = irflow.get_config(f'task={task}')
      self.assertEqual(c.input.dataset,
                       'demo_denoise' if task == 'demo' else task)
      layout = datasets.layout(c.input.dataset)
      self.assertAlmostEqual(c.irflow.noise_sigma, layout.noise_sigma,
                             msg=task)
      self.assertAlmostEqual(c.evals.noise_sigma, layout.noise_sigma,
                             msg=task)
      self.assertEqual(layout.kind == 'clean', layout.noise_sigma > 0, task)
    self.assertAlmostEqual(irflow.get_config('task=denoise').irflow
                           .noise_sigma, 25 / 255)  # spec irflow.md (data, §7)
    with self.assertRaisesRegex(ValueError, 'Unknown IR-Flow task'):
      irflow.get_config('task=inpaint')


if __name__ == '__main__':
  absltest.main()
