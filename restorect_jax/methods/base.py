"""The Method interface: everything that differs between training methods.

A method (RestoRect, IR-Flow, or one defined outside the package) is an
object with the members below; ``train.py``, the evaluator and the
evaluate / restore CLIs talk to it only through them, so nothing outside
``methods/`` (and ``models/``) names a method. Register one with
:func:`restorect_jax.methods.register`, or name it in a config as
``'package.module:attribute'`` (``config.method``).
"""

from __future__ import annotations

from typing import Any, Protocol

import flax.linen as nn
import ml_collections
import optax

from restorect_jax.core.train_step import Phase
from restorect_jax.inference.predictor import Predictor

Config = ml_collections.ConfigDict
Params = dict[str, Any]


class Method(Protocol):
  """What a training method supplies (see the module docstring).

  Attributes:
    name: the registry name, e.g. ``'restorect'``.
  """

  name: str

  def models(self, config: Config, *, training: bool = False
             ) -> dict[str, nn.Module]:
    """Linen modules: the train-step variant (``training=True``, computing
    in ``config.compute_dtype``, with remat) or the evaluation variant; the
    two have the same parameter trees."""

  def frozen(self, config: Config, workdir: str) -> dict[str, Any]:
    """Networks that are used but not trained (DecomNets, a teacher)."""

  def provenance(self, config: Config) -> dict[str, Any] | None:
    """What a checkpoint records about its inputs (e.g. the teacher run)."""

  def init(self, config: Config, models: dict[str, nn.Module],
           frozen: dict[str, Any]) -> Params:
    """Fresh trainable parameters (a pytree of arrays)."""

  def optimizers(self, config: Config, params: Params
                 ) -> tuple[dict[str, optax.GradientTransformation],
                            dict[str, optax.Schedule]]:
    """Optimizers and their lr schedules, keyed by optimizer name."""

  def phases(self, config: Config, models: dict[str, nn.Module],
             schedules: dict[str, optax.Schedule]) -> dict[str, Phase]:
    """The pure train step of every phase, by phase name."""

  def phase(self, config: Config, step: int) -> str:
    """The phase that trains global step ``step`` (0-based)."""

  def eval_weights(self, config: Config) -> str:
    """``'ema'`` or ``'online'``: the weights evaluation uses."""

  def predictor(self, config: Config, params: Params,
                frozen: dict[str, Any], info: dict[str, Any]) -> Predictor:
    """THE inference path of a trained model (``params`` as trained)."""
