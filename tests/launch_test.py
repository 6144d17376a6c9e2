"""launch/ scripts and benchmarks/: syntax, usage, argument passing, smoke.

The launchers run with stub ``python``, ``srun``, ``gcloud`` and ``curl``
executables that record what they were given, so the tests check the
command lines and environment each launcher builds without a GPU, Slurm or
a TPU. The benchmark scripts run end to end in ``--smoke`` mode (tiny
variants, 32² inputs) so they cannot rot.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

from absl.testing import absltest

import testutil

REPO = testutil.REPO
LAUNCHERS = ('launch/gpu.sh', 'launch/slurm.sbatch', 'launch/tpu_vm.sh')
# Records its argv (one per line) and selected environment variables.
_RECORDER = r'''#!/usr/bin/env bash
{
  echo "PROG $0"
  for a in "$@"; do echo "ARG $a"; done
  for v in CUDA_VISIBLE_DEVICES XLA_PYTHON_CLIENT_PREALLOCATE \
           JAX_LOCAL_DEVICE_IDS; do
    echo "ENV $v=${!v-<unset>}"
  done
} >> "$RECORD"
'''


def _write_exe(path: pathlib.Path, text: str) -> None:
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _records(path: pathlib.Path) -> list[list[str]]:
  """Calls recorded by the stubs, each a list of lines."""
  calls, cur = [], None
  for line in path.read_text().splitlines():
    if line.startswith('PROG '):
      cur = [line]
      calls.append(cur)
    else:
      cur.append(line)
  return calls


class LauncherTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = pathlib.Path(tempfile.mkdtemp())
    self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
    self.bin = self.tmp / 'bin'
    self.bin.mkdir()
    self.record = self.tmp / 'record.txt'
    self.record.touch()
    _write_exe(self.bin / 'fake_python', _RECORDER)
    self.env = dict(os.environ, RECORD=str(self.record),
                    PATH=f'{self.bin}:{os.environ["PATH"]}',
                    PYTHON=str(self.bin / 'fake_python'))
    for v in ('CUDA_VISIBLE_DEVICES', 'XLA_PYTHON_CLIENT_PREALLOCATE',
              'JAX_LOCAL_DEVICE_IDS', 'GPUS'):
      self.env.pop(v, None)

  def _run(self, *cmd, env=None, cwd=REPO):
    return subprocess.run(list(cmd), capture_output=True, text=True,
                          env=env or self.env, cwd=cwd, timeout=60,
                          check=False)

  def test_bash_syntax(self):
    for script in LAUNCHERS:
      res = self._run('bash', '-n', script)
      self.assertEqual(res.returncode, 0, f'{script}: {res.stderr}')

  def test_usage_headers(self):
    for script in LAUNCHERS:
      lines = (REPO / script).read_text().splitlines()
      self.assertEqual(lines[0], '#!/usr/bin/env bash', script)
      self.assertTrue(lines[1].startswith('# Usage'), script)
      res = self._run('bash', script, '--help')
      self.assertEqual(res.returncode, 0, f'{script}: {res.stderr}')
      self.assertIn('Usage', res.stdout, script)
      self.assertIn('restorect_jax.main', res.stdout, script)
      self.assertEqual(self.record.read_text(), '', f'{script} ran on --help')

  def test_gpu_sh_passes_arguments_unchanged(self):
    env = dict(self.env, GPUS='0,2')
    args = ['--config', 'configs/restorect_s1.py:dataset=lol_v1',
            '--config.input.data_dir=/data/with space', '--workdir', 'w']
    res = self._run('bash', 'launch/gpu.sh', *args, env=env)
    self.assertEqual(res.returncode, 0, res.stderr)
    (call,) = _records(self.record)
    self.assertEqual([l[4:] for l in call if l.startswith('ARG ')],
                     ['-m', 'restorect_jax.main', *args])
    self.assertIn('ENV CUDA_VISIBLE_DEVICES=0,2', call)
    self.assertIn('ENV XLA_PYTHON_CLIENT_PREALLOCATE=false', call)

  def test_slurm_runs_one_process_per_node_with_all_gpus(self):
    # A stub srun that runs its command once, as node 1 of 2 would.
    _write_exe(self.bin / 'srun', '#!/usr/bin/env bash\n'
               'while [[ "$1" == --* ]]; do shift; done\n'
               'SLURM_PROCID=1 SLURM_LOCALID=0 exec "$@"\n')
    env = dict(self.env, SLURM_SUBMIT_DIR=str(REPO), SLURM_GPUS_ON_NODE='4',
               SLURM_NTASKS='2', SLURM_JOB_ID='123')
    args = ['--config', 'configs/restorect_s2.py:dataset=lol_v1',
            '--workdir', '/shared/runs/s2']
    res = self._run('bash', str(REPO / 'launch/slurm.sbatch'), *args,
                    env=env, cwd=self.tmp)
    self.assertEqual(res.returncode, 0, res.stderr)
    (call,) = _records(self.record)
    self.assertEqual([l[4:] for l in call if l.startswith('ARG ')],
                     ['-m', 'restorect_jax.main', *args])
    self.assertIn('ENV JAX_LOCAL_DEVICE_IDS=0,1,2,3', call)
    text = (REPO / 'launch/slurm.sbatch').read_text()
    self.assertIn('#SBATCH --ntasks-per-node=1', text)

  def test_tpu_vm_local_side_runs_the_module_on_all_workers(self):
    _write_exe(self.bin / 'gcloud', _RECORDER)
    env = dict(self.env, TPU='my-tpu', ZONE='us-central2-b', COPY='0')
    res = self._run('bash', 'launch/tpu_vm.sh', '--config',
                    'configs/irflow.py:task=derain', '--workdir', 'a b',
                    env=env)
    self.assertEqual(res.returncode, 0, res.stderr)
    (call,) = _records(self.record)
    args = [l[4:] for l in call if l.startswith('ARG ')]
    self.assertEqual(args[:5], ['compute', 'tpus', 'tpu-vm', 'ssh', 'my-tpu'])
    self.assertIn('--worker=all', args)
    command = args[args.index('--command') + 1]
    self.assertIn('launch/tpu_vm.sh --on_worker --config '
                  'configs/irflow.py:task=derain --workdir a\\ b', command)

  def test_tpu_vm_worker_side_adds_distributed_on_a_pod(self):
    home = self.tmp / 'home'
    (home / 'restorect_venv' / 'bin').mkdir(parents=True)
    _write_exe(home / 'restorect_venv' / 'bin' / 'python', _RECORDER)
    for endpoints, want in (('10.0.0.1:8470,10.0.0.2:8470', True),
                            ('10.0.0.1:8470', False)):
      self.record.write_text('')
      _write_exe(self.bin / 'curl',
                 f'#!/usr/bin/env bash\necho -n "{endpoints}"\n')
      env = dict(self.env, HOME=str(home))
      res = self._run('bash', 'launch/tpu_vm.sh', '--on_worker', '--config',
                      'configs/restorect_s1.py', '--workdir', 'w', env=env)
      self.assertEqual(res.returncode, 0, res.stderr)
      (call,) = _records(self.record)
      args = [l[4:] for l in call if l.startswith('ARG ')]
      tail = ['--config', 'configs/restorect_s1.py', '--workdir', 'w']
      self.assertEqual(args, ['-m', 'restorect_jax.main'] +
                       (['--distributed'] if want else []) + tail)


class BenchmarkScriptsTest(absltest.TestCase):

  def _bench(self, module, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-m', f'benchmarks.{module}',
                           *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300, check=False)

  def test_help(self):
    # absl's --help prints the main module's flags and exits with status 1.
    wanted = {'restorect_bench': ('smoke', 'threads', 'device', 'rows',
                                  'json_out', 'depthwise'),
              'parts_bench': ('smoke', 'threads', 'mode', 'parts',
                              'profile'),
              'profile_ops': ('calls', 'top', 'depth')}
    for module, names in wanted.items():
      res = self._bench(module, '--help')
      self.assertEqual(res.returncode, 1, res.stderr)
      self.assertNotIn('Traceback', res.stderr, module)
      for flag in names:  # '--rows:' or '--[no]smoke:'
        self.assertRegex(res.stdout, rf'--(\[no\])?{flag}:', module)

  def test_restorect_bench_smoke(self):
    # One inference row and the IR-Flow row end to end in both frameworks
    # (the train-step row compiles for minutes even at tiny size; its torch
    # loss is checked against JAX's in tests/torch_twin_test.py).
    tmp = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    out = os.path.join(tmp, 'bench.json')
    res = self._bench('restorect_bench', '--smoke', '--rows=student4,irflow',
                      '--threads=1', f'--json_out={out}')
    self.assertEqual(res.returncode, 0, res.stderr[-3000:])
    self.assertIn('| row | shape | GFLOP (XLA) | JAX ms | torch ms | '
                  'torch/JAX |', res.stdout)
    with open(out) as f:
      result = json.load(f)
    self.assertEqual(result['machine']['threads'], 1)
    self.assertEqual([r['row'] for r in result['rows']],
                     ['student N=4', 'IR-Flow tiny N=4'])
    for r in result['rows']:
      self.assertGreater(r['flops'], 0)
      self.assertGreater(r['jax']['median_s'], 0)
      self.assertGreater(r['torch']['median_s'], 0)
      self.assertAlmostEqual(r['torch_over_jax'], r['torch']['median_s'] /
                             r['jax']['median_s'])
      # Same weights and inputs on both sides: the outputs agree.
      self.assertLess(r['max_abs_diff'], 1e-4, r['row'])


  def test_parts_bench_smoke(self):
    tmp = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    out = os.path.join(tmp, 'parts.json')
    res = self._bench('parts_bench', '--smoke', '--mode=fwd_bwd',
                      '--threads=1', '--parts=DecomNet,block encoder_level1',
                      '--depthwise=shifted_vjp', f'--json_out={out}')
    self.assertEqual(res.returncode, 0, res.stderr[-3000:])
    self.assertIn('| part | count | JAX ms ×count |', res.stdout)
    with open(out) as f:
      result = json.load(f)
    self.assertEqual(result['machine']['depthwise'], 'shifted_vjp')
    self.assertEqual([r['row'].split(' (')[0] for r in result['rows']],
                     ['DecomNet', 'block encoder_level1'])
    for r in result['rows']:
      # Forward outputs agree (the gradients are computed, not compared).
      self.assertLess(r['max_abs_diff'], 1e-4, r['row'])
      self.assertGreater(r['torch']['median_s'], 0)


class TorchStepTest(absltest.TestCase):
  """The torch S2 phase-2 step of the train-step row, on tiny twins."""

  def test_step_updates_params_and_ema(self):
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    from benchmarks import torch_s2_step  # pylint: disable=g-import-not-at-top
    from benchmarks import workloads  # pylint: disable=g-import-not-at-top
    from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
    torch.manual_seed(0)
    config = workloads.s2_config('tiny', 'float32', remat=False)
    student = torch_twin.build('student', 'tiny').train()
    nets = [torch_twin.build(n, 'tiny').eval()
            for n in ('teacher', 'decomnet', 'decomnet')]
    step = torch_s2_step.PhaseTwoStep(student, *nets, config, lr=1e-3)
    draws = torch_s2_step.jax_draws(jax.random.PRNGKey(0), 0, 2)
    self.assertEqual(draws['t_idx_rex'].dtype, np.int64)
    self.assertEqual(draws['noise_img'].shape, (2, 256))
    before = [p.detach().clone() for p in step.params]
    rs = np.random.RandomState(0)
    lq, gt = (torch.from_numpy(rs.uniform(0, 1, (2, 3, 16, 16)).astype(
        np.float32)) for _ in range(2))
    out = step(lq, gt, torch_s2_step.to_randoms(draws, 'cpu'))
    self.assertTrue(torch.isfinite(out['loss']))
    self.assertGreater(float(out['l2_grads']), 0.0)
    for k in ('loss_l1', 'loss_flex', 'loss_velocity', 'loss_kd_l1'):
      self.assertIn(k, out)
    moved = [not torch.equal(a, p) for a, p in zip(before, step.params,
                                                    strict=True)]
    self.assertGreater(sum(moved), len(moved) // 2)
    # EMA (decay 0.999) moved by a thousandth of the update.
    e, p, b = step.ema[0], step.params[0].detach(), before[0]
    torch.testing.assert_close(e, b + (1 - config.optim.ema_decay) * (p - b))
    # Frozen nets: no gradients.
    self.assertTrue(all(q.grad is None for n in nets for q in n.parameters()))


if __name__ == '__main__':
  absltest.main()
