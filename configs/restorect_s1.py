r"""RestoRect S1: teacher pre-training (spec restorect.md §1, §4).

Command (one host; see launch/ for more)::

  python -m restorect_jax.main --config configs/restorect_s1.py:dataset=lol_v1 \
    --config.input.data_dir=/data/LOLdataset \
    --config.decom_init.low=pretrained_models/init_low.pth \
    --config.decom_init.high=pretrained_models/init_high.pth \
    --workdir runs/s1_lol_v1

Hardware: the reference trains 300k steps on 4 GPUs with 8 images each
(global batch 32 here: ``--config.input.batch_size=32`` and
``mini_batch_sizes`` scaled ×4). Result: not measured yet with this port
(no GPU has been lent to the project); the authors' S2 results (spec §6)
start from S1 checkpoints at 20k–135k steps.

Differs from ``configs/common.py``: 300k steps; BasicSR cyclic cosine
restarts with periods 92k / 208k, the first cycle rising to 2.55e-4 (its
eta_min above the base lr), the second decaying to 1e-6 (a cycle owns its
last step, as Reti-Diff's ``get_position_from_periods``).

Args (``:a=b,c``): ``dataset`` (a name in restorect_jax.datasets, e.g.
lol_v1, lol_v2_real, lol_v2_syn, or folder), ``runlocal`` (tiny model and
steps for a smoke run).
"""

from configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, dataset='lol_v1', runlocal=False)
  c = common.restorect('s1', a.dataset)
  c.total_steps = 300_000
  c.schedule = common.Config(dict(
      periods=(92_000, 208_000), restart_weights=(1.0, 1.0),
      eta_mins=(2.55e-4, 1e-6)))
  if a.runlocal:
    common.runlocal(c)
  return c
