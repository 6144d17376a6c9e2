"""PyTorch twins of the deployed networks, the baseline JAX is compared with.

Written from the specs (``shared/spec/restorect.md`` §2–§3, ``irflow.md``
§4) with the reference's module attribute names, so their ``state_dict()``
keys are the reference checkpoints' keys and the output of
``restorect_jax.convert.flax_to_torch``. Layout NCHW float32; forward
arguments in the order of the Flax modules' ``__call__``.

Example::

  from restorect_jax import torch_twin
  twin = torch_twin.from_flax('interface', 'default', flax_variables)
  out = twin(lq, rex_lq, noise_rex, noise_img, num_steps=5)  # NCHW

Needs the optional ``torch`` extra: ``pip install -e '.[torch]'``.
"""

try:
  import torch  # noqa: F401  pylint: disable=unused-import
except ImportError as e:  # pragma: no cover - depends on the environment
  raise ImportError(
      'restorect_jax.torch_twin needs PyTorch, an optional dependency: '
      "install it with  pip install -e '.[torch]'  (the CPU build this "
      'project is tested with).') from e

# pylint: disable=g-import-not-at-top,g-bad-import-order
from restorect_jax.torch_twin.decom_net import DecomNet
from restorect_jax.torch_twin.irflow_unet import ConditionalUNet
from restorect_jax.torch_twin.irflow_unet import UNet
from restorect_jax.torch_twin.loading import NAMES
from restorect_jax.torch_twin.loading import build
from restorect_jax.torch_twin.loading import from_flax
from restorect_jax.torch_twin.loading import load_reference
from restorect_jax.torch_twin.loading import load_state_dict
from restorect_jax.torch_twin.loading import to_flax
from restorect_jax.torch_twin.losses import StudentLossConfig
from restorect_jax.torch_twin.losses import StudentRandoms
from restorect_jax.torch_twin.losses import draw_student_randoms
from restorect_jax.torch_twin.losses import student_loss
from restorect_jax.torch_twin.prior_encoders import PriorEncoder
from restorect_jax.torch_twin.prior_encoders import RetinexPriorEncoder
from restorect_jax.torch_twin.restorect import Interface
from restorect_jax.torch_twin.restorect import Student
from restorect_jax.torch_twin.restorect import Teacher
from restorect_jax.torch_twin.rgformer import RGFormer
from restorect_jax.torch_twin.samplers import irflow_euler_sample
from restorect_jax.torch_twin.samplers import irflow_euler_schedule
from restorect_jax.torch_twin.samplers import restore_with_noise
from restorect_jax.torch_twin.velocity import VelocityPredictor
from restorect_jax.torch_twin.velocity import euler_sample
from restorect_jax.torch_twin.velocity import time_labels

__all__ = [
    'ConditionalUNet', 'DecomNet', 'Interface', 'NAMES', 'PriorEncoder',
    'RGFormer', 'RetinexPriorEncoder', 'Student', 'StudentLossConfig',
    'StudentRandoms', 'Teacher', 'UNet', 'VelocityPredictor', 'build',
    'draw_student_randoms', 'euler_sample', 'from_flax',
    'irflow_euler_sample', 'irflow_euler_schedule', 'load_reference',
    'load_state_dict', 'restore_with_noise', 'student_loss', 'time_labels',
    'to_flax',
]
