r"""IR-Flow: pixel-space rectified flow from the degraded to the clean image.

Spec: shared/spec/irflow.md §6–§7. One config for every task the reference
defines (``task=derain|raindrop|denoise|dehaze|deblur|sr``) plus ``demo``
(denoising σ 25 on the bundled photos, CPU minutes). Command::

  python -m restorect_jax.main --config configs/irflow.py:task=derain \
    --config.input.data_dir=/data/Rain100L --workdir runs/irflow_derain

Reference settings: ConditionalUNet nf 64 depth 4 (137.1 M params), batch 8
of 256² patches, Adam β (0.9, 0.99), lr 1e-4 (2e-4 deblur/SR) halved at the
milestones, 700k steps, EMA 0.995 every 10 steps, MSC weight 0.3 (0.2
deblur) computed without gradient (``irflow.msc_mode='reference'``; the
paper's gradient path is ``'paper'``), BGR network input
(``irflow.channel_order``). Evaluation uses the EMA weights (the reference
evaluates the online ones: ``irflow.eval_params=online``), 1 Euler step
during training and crop-1 PSNR / SSIM. Expected result: the paper's tables
could not be retrieved (spec §9); not yet reproduced with this port.

Args (``:a=b,c``): ``task``, ``variant`` (default, small, tiny), ``runlocal``
(tiny model and steps for a smoke run).
"""

from restorect_jax import config_lib as common


def get_config(arg=None):
  a = common.parse_arg(arg, task='derain', variant='', runlocal=False)
  c = common.irflow_config(a.task)
  if a.task == 'demo':
    common.irflow_demo(c)
  if a.runlocal:
    common.shrink_irflow_for_local(c)
  if a.variant:
    c.model.variant = a.variant
  return c
