"""A third method, defined only here, runs through main, evaluate, restore.

``ToyDenoiser`` (one 3×3 convolution added to its input) implements the
Method interface (``restorect_jax/methods/base.py``) in this file and
registers itself on import; the CLIs get it with ``--imports=
toy_method_test``. Nothing in ``restorect_jax/`` names it: the test proves
that a new method needs no edit to library code.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from restorect_jax import methods
from restorect_jax.core.train_step import Phase
from restorect_jax.inference.predictor import Predictor
import testutil


class OneConv(nn.Module):
  """x + conv3x3(x): a residual one-layer denoiser."""

  @nn.compact
  def __call__(self, x):
    return x + nn.Conv(3, (3, 3), padding='SAME', name='conv')(x)


def _loss(params, batch, frozen, draws, *, model):
  del frozen, draws
  out = model.apply({'params': params['model']}, batch['lq'])
  loss = jnp.mean(jnp.abs(out - batch['gt']))
  return loss, {'loss_l1': loss}


_predict = jax.jit(lambda params, x: OneConv().apply({'params': params}, x))


class ToyDenoiser:
  """The Method members, nothing more (restorect_jax.methods.base)."""

  name = 'toy_denoiser'

  def models(self, config, *, training=False):
    del config, training
    return {'net': OneConv()}

  def frozen(self, config, workdir):
    del config, workdir
    return {}

  def provenance(self, config):
    del config

  def init(self, config, models, frozen):
    del frozen
    x = jnp.zeros((1, 8, 8, 3), jnp.float32)
    return {'model': models['net'].init(jax.random.PRNGKey(config.seed),
                                        x)['params']}

  def optimizers(self, config, params):
    del params
    schedules = {'main': optax.constant_schedule(config.optim.lr)}
    return {'main': optax.adam(schedules['main'])}, schedules

  def phases(self, config, models, schedules):
    import functools  # pylint: disable=g-import-not-at-top
    loss = functools.partial(_loss, model=models['net'])
    return {'main': Phase('main', loss, config.optim.ema_decay,
                          schedules['main'])}

  def phase(self, config, step):
    del config, step
    return 'main'

  def eval_weights(self, config):
    del config
    return 'ema'

  def deploy_frozen(self, config, workdir):
    del config, workdir
    return {}

  def predictor(self, config, params, frozen, info):
    del config, frozen
    p = params['model']
    return Predictor(self.name, 1, False, 1, info,
                     lambda padded, steps, key, gt, noise: None,
                     lambda batch, context, steps: _predict(p, batch))


methods.register(ToyDenoiser())

_CONFIG = '''
from configs import common


def get_config(arg=None):
  del arg
  c = common.base('toy_denoiser', 'demo')
  c.optim = common.Config(dict(lr=1e-2, ema_decay=0.5))
  c.input.update(dict(patch_size=16, batch_size=2, mini_batch_sizes=(2,),
                      gt_sizes=(16,), stage_steps=(3,)))
  c.total_steps = 3
  c.ckpt_steps = 3
  c.log_training_steps = 1
  c.evals.max_images = 2
  c.mesh.num_devices = 1
  return c
'''


def _run(module, *args):
  return testutil.run_cli(module, *args)


class ToyMethodTest(absltest.TestCase):

  def test_train_evaluate_restore_without_library_edits(self):
    root = tempfile.mkdtemp()
    cfg = os.path.join(root, 'cfgs', 'configs_toy.py')
    os.makedirs(os.path.dirname(cfg))
    with open(cfg, 'w') as f:
      f.write(textwrap.dedent(_CONFIG))
    wd = os.path.join(root, 'run')
    r = _run('main', f'--config={cfg}', f'--workdir={wd}',
             '--imports=toy_method_test')
    self.assertEqual(r.returncode, 0, r.stderr[-3000:])
    train_eval = json.loads(r.stdout.strip().splitlines()[-1])
    self.assertEqual(train_eval['method'], 'toy_denoiser')
    self.assertEqual(train_eval['n'], 2)

    lq_dir = os.path.join(wd, 'demo_data', 'test', 'low')
    gt_dir = os.path.join(wd, 'demo_data', 'test', 'high')
    out = os.path.join(root, 'eval')
    r = _run('evaluate', f'--checkpoint={wd}', '--imports=toy_method_test',
             f'--lq_dir={lq_dir}', f'--gt_dir={gt_dir}', '--max_images=2',
             f'--output_dir={out}')
    self.assertEqual(r.returncode, 0, r.stderr[-3000:])
    with open(os.path.join(out, 'summary.json')) as f:
      summary = json.load(f)
    self.assertEqual(summary['model']['method'], 'toy_denoiser')
    # The CLI reports what training's evaluation reported (same evaluator,
    # same predictor, same images).
    psnr = [r['mean'] for r in summary['results']
            if r['protocol'] == 'standard' and r['metric'] == 'psnr']
    self.assertLen(psnr, 1)
    self.assertAlmostEqual(psnr[0], train_eval['standard']['psnr'], places=9)

    restored = os.path.join(root, 'restored')
    r = _run('restore', f'--checkpoint={wd}', '--imports=toy_method_test',
             f'--input={lq_dir}', f'--output={restored}')
    self.assertEqual(r.returncode, 0, r.stderr[-3000:])
    self.assertEqual(sorted(os.listdir(restored)),
                     sorted(n for n in os.listdir(lq_dir)))

  def test_library_names_no_toy(self):
    # The point of the test above: the method lives only in this file.
    for root, _, files in os.walk(os.path.join(testutil.REPO,
                                               'restorect_jax')):
      for name in files:
        if name.endswith('.py'):
          with open(os.path.join(root, name)) as f:
            self.assertNotIn('toy_denoiser', f.read(), name)

  def test_unregistered_method_is_one_clear_error(self):
    with self.assertRaisesRegex(ValueError, 'Unknown method .no_such'):
      methods.get('no_such')
    np.testing.assert_equal(methods.get('toy_denoiser').name,
                            'toy_denoiser')


if __name__ == '__main__':
  absltest.main()
