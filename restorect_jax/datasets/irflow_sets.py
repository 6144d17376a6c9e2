"""IR-Flow sets: Rain100L deraining, RainDrop removal, Gaussian denoising.

Assumptions (spec ``irflow.md`` §6–§7):

* Rain100L uses the IR-Flow config's layout, ``trainL/{LQ,GT}`` (RainTrainL,
  200 pairs) and ``testL/{LQ,GT}`` (Rain100L test, 100 pairs). Files pair by
  stem after dropping a leading ``rain-`` / ``norain-`` (``rain-001.png`` ↔
  ``norain-001.png``; identical names also pair). The JORDER originals
  (``RainTrainL/rain-*.png`` + ``norain-*.png`` in one folder) must be
  sorted into ``LQ``/``GT`` first.
* RainDrop (Qian et al. 2018) as the public zips unpack:
  ``train/{data,gt}``, ``test_a/{data,gt}`` and, with the ``with_test_b``
  config, ``test_b/{data,gt}``; ``N_rain.png`` pairs with ``N_clean.png``
  (the part before the first ``_``). The IR-Flow reference has no RainDrop
  config; its README names Restormer-style ``input``/``target`` folders.
* Denoising keeps **clean images only** (``KIND='clean'``): ``train/DFWB``
  (DIV2K + Flickr2K + WED + BSD400, Restormer's layout) and
  ``test/CBSD68``. Sources yield ``lq = gt``; the noisy input is
  synthesised later, ``lq = gt + σ·N(0, 1)`` with σ = 25/255, not clipped,
  fresh noise per training step (``config_lib.IRFLOW_TASKS['denoise']``;
  evaluation seeds it per image, ``train._SyntheticNoise``). σ is recorded
  in the metadata (``extra.noise``); noise is never stored in the records.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from restorect_jax.datasets import base

_RAIN100L_TREE = """\
RainL/                      <- --manual_dir
  trainL/LQ/*.png           RainTrainL rainy inputs (e.g. rain-001.png)
  trainL/GT/*.png           clean targets (norain-001.png or same name)
  testL/LQ/*.png            Rain100L test inputs
  testL/GT/*.png"""

_RAINDROP_TREE = """\
RainDrop/                   <- --manual_dir
  train/data/*_rain.png     inputs (e.g. 0_rain.png)
  train/gt/*_clean.png      targets (0_clean.png)
  test_a/data/*_rain.png
  test_a/gt/*_clean.png
  test_b/data, test_b/gt    (config with_test_b only)"""

_DENOISE_TREE = """\
Denoising/                  <- --manual_dir
  train/DFWB/*.png          clean training images (DIV2K, Flickr2K, WED,
                            BSD400 in one folder)
  test/CBSD68/*.png         68 clean colour test images"""

NOISE_SIGMA = 25.0 / 255.0


class Rain100l(base.FolderBuilder):
  """Rain100L deraining: RainTrainL (train) and Rain100L (test)."""

  name = 'rain100l'
  TREE = _RAIN100L_TREE
  HOMEPAGE = ('https://github.com/flyywh/'
              'JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal')
  SPLIT_RULE = ('train = trainL/{LQ,GT}, test = testL/{LQ,GT}; pairing key '
                'drops a leading rain-/norain-')
  SPLITS = {
      'train': base.FolderSplit('trainL/LQ', 'trainL/GT', key='rain_prefix'),
      'test': base.FolderSplit('testL/LQ', 'testL/GT', key='rain_prefix'),
  }


class Raindrop(base.FolderBuilder):
  """RainDrop removal (Qian et al. 2018): train, test_a (and test_b)."""

  name = 'raindrop'
  TREE = _RAINDROP_TREE
  HOMEPAGE = 'https://github.com/rui1996/DeRaindrop'
  SPLIT_RULE = ('train, test_a[, test_b] folders; N_rain pairs with N_clean '
                '(key = part before the first _)')
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='default',
                              description='splits train and test_a'),
      tfds.core.BuilderConfig(name='with_test_b',
                              description='splits train, test_a and test_b'),
  ]

  def _split_specs(self):
    splits = ['train', 'test_a']
    if self.builder_config.name == 'with_test_b':
      splits.append('test_b')
    return {s: base.FolderSplit(f'{s}/data', f'{s}/gt',
                                key='underscore_prefix')
            for s in splits}


class Denoise(base.FolderBuilder):
  """Gaussian denoising: clean DFWB (train) and CBSD68 (test); σ = 25/255."""

  name = 'denoise'
  KIND = 'clean'
  TREE = _DENOISE_TREE
  HOMEPAGE = 'https://github.com/swz30/Restormer'
  SPLIT_RULE = 'train = train/DFWB, test = test/CBSD68 (clean images only)'
  EXTRA_METADATA = {
      'noise': {
          'kind': 'gaussian', 'sigma': NOISE_SIGMA, 'sigma_255': 25.0,
          'clipped': False,
          'where': ('synthesised after loading: lq = gt + sigma * N(0, 1); '
                    'fresh per training step, seeded per image at eval'),
      }
  }
  SPLITS = {
      'train': base.FolderSplit(None, 'train/DFWB', key='same_file'),
      'test': base.FolderSplit(None, 'test/CBSD68', key='same_file'),
  }
