r"""RestoRect S1: teacher pre-training (spec §1, §4).

Command (one host; see launch/ for more)::

  python -m restorect_jax.main --config configs/restorect_s1.py:dataset=lol_v1 \
    --config.input.data_dir=/data/LOLdataset \
    --config.decom_init.low=pretrained_models/init_low.pth \
    --config.decom_init.high=pretrained_models/init_high.pth \
    --workdir runs/s1_lol_v1

Hardware: the reference trains 300k steps on 4 GPUs with 8 images each
(global batch 32 in our terms: --config.input.batch_size=32 and
mini_batch_sizes scaled ×4). Expected result: not yet measured with this
port; the authors' S2 results (spec §6) start from S1 checkpoints at
20k–135k steps.

Args (``:a=b,c``): ``dataset`` (lol_v1, lol_v2_real, lol_v2_syn, folder,
demo), ``runlocal`` (tiny model and steps for a smoke run).
"""

from restorect_jax import config_lib as common


def get_config(arg=None):
  a = common.parse_arg(arg, dataset='lol_v1', runlocal=False)
  c = common.base_config('s1', a.dataset)
  c.total_steps = 300_000
  c.schedule = dict(kind='cosine_restart', periods=(92_000, 208_000),
                    restart_weights=(1.0, 1.0), eta_mins=(2.55e-4, 1e-6))
  if a.runlocal:
    common.shrink_for_local(c)
  return c
