"""Tiny fixture trees laid out like each public download (made per test).

Every ``make_*`` function writes a tree under ``root`` and returns a
:class:`Tree`: the manual folder (the data dir) and, per split, the expected
records in order as ``{name: (lq file or None, gt file or None)}``. Images
are random (seeded by their path) and small; in PNG sets every target is the
inverse of its input (``gt = 255 - lq``), so a crop that keeps lq and gt
aligned keeps that relation. JPEG/BMP sets only check records against the
decoded files.

:data:`MAKERS` covers the TFDS builders (``datasets_test``);
:data:`PUBLIC_MAKERS` covers every name of ``datasets.names()``, and
:func:`make_public_layout` / :func:`public_tree` build one by name (e.g. for
one training step or one evaluation per dataset name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
from PIL import Image

from restorect_jax.data import demo_data
from restorect_jax.datasets import splits as splits_lib

H, W = 16, 24
LOL_V1_EVAL15 = ('1', '22', '23', '55', '79', '111', '146', '179', '493',
                 '547', '665', '669', '748', '778', '780')

Expected = dict[str, dict[str, tuple[str | None, str | None]]]


@dataclasses.dataclass
class Tree:
  manual_dir: str
  expected: Expected


def random_image(key: str, h: int = H, w: int = W) -> np.ndarray:
  seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], 'little')
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def save(path: str, arr: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  ext = os.path.splitext(path)[1].lower()
  fmt = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.bmp': 'BMP'}.get(ext, 'PNG')
  kwargs = {'quality': 95} if fmt == 'JPEG' else {}
  Image.fromarray(arr).save(path, format=fmt, **kwargs)
  return path


def write_pair(lq_path: str, gt_path: str, key: str | None = None,
               *, h: int = H, w: int = W, image: np.ndarray | None = None
               ) -> tuple[str, str]:
  """Writes lq and its inverse as gt (``gt = 255 - lq``)."""
  lq = random_image(key or lq_path, h, w) if image is None else image
  return save(lq_path, lq), save(gt_path, 255 - lq)


def _folder_pairs(root, split, lq_rel, gt_rel, names, *, lq_ext='.png',
                  gt_ext='.png', gt_name=None, h=H, w=W):
  """Pairs in ``root/lq_rel`` and ``root/gt_rel``; returns expected."""
  out = {}
  for n in names:
    lq = os.path.join(root, lq_rel, n + lq_ext)
    gt = os.path.join(root, gt_rel, (gt_name(n) if gt_name else n) + gt_ext)
    write_pair(lq, gt, f'{split}/{n}', h=h, w=w)
    out[n] = (lq, gt)
  return out


def _sorted(d):
  return {k: d[k] for k in sorted(d)}


def make_lol_v1(root: str) -> Tree:
  m = os.path.join(root, 'LOLdataset')
  train = _folder_pairs(m, 'train', 'our485/low', 'our485/high',
                        ['2', '10', '100', '5'])
  test = _folder_pairs(m, 'test', 'eval15/low', 'eval15/high', LOL_V1_EVAL15)
  return Tree(m, {'train': _sorted(train), 'test': test})


def make_lol_v2(root: str) -> dict[str, Tree]:
  """Both LOL-v2 builders read one tree."""
  m = os.path.join(root, 'LOL-v2')
  prefix = lambda n: 'normal' + n[3:]
  real_train = _folder_pairs(m, 'rtrain', 'Real_captured/Train/Low',
                             'Real_captured/Train/Normal',
                             [f'low{i:05d}' for i in (1, 2, 3)],
                             gt_name=prefix)
  real_test = _folder_pairs(m, 'rtest', 'Real_captured/Test/Low',
                            'Real_captured/Test/Normal',
                            [f'low{i:05d}' for i in range(690, 790)],
                            gt_name=prefix, h=8, w=8)
  syn_train = _folder_pairs(m, 'strain', 'Synthetic/Train/Low',
                            'Synthetic/Train/Normal',
                            ['r000da4f2t', 'r13073518t', 'r0a1b2c3dt'])
  syn_test = _folder_pairs(m, 'stest', 'Synthetic/Test/Low',
                           'Synthetic/Test/Normal', ['r00816405t', 'r1a2b3c4t'])
  return {
      'lol_v2_real': Tree(m, {'train': real_train, 'test': real_test}),
      'lol_v2_syn': Tree(m, {'train': _sorted(syn_train),
                             'test': _sorted(syn_test)}),
  }


def make_lol_v2_real(root: str) -> Tree:
  return make_lol_v2(root)['lol_v2_real']


def make_lol_v2_syn(root: str) -> Tree:
  return make_lol_v2(root)['lol_v2_syn']


def make_lol_blur(root: str) -> Tree:
  m = os.path.join(root, 'LOL-Blur')
  expected = {}
  for split, videos in (('train', ('0000', '0001')), ('test', ('0170',))):
    out = {}
    for v in videos:
      for f in ('0000', '0001'):
        lq, gt = write_pair(
            os.path.join(m, split, 'low_blur', v, f + '.png'),
            os.path.join(m, split, 'high_sharp_scaled', v, f + '.png'))
        out[f'{v}_{f}'] = (lq, gt)
    # A folder of the download the builder does not use.
    save(os.path.join(m, split, 'low_blur_noise', videos[0], '0000.png'),
         random_image('noise'))
    expected[split] = _sorted(out)
  return Tree(m, expected)


SID_LISTS = {
    'train': [('00001_00_0.04s', '00001_00_10s'),
              ('00001_01_0.1s', '00001_00_10s'),
              ('00002_00_0.04s', '00002_00_10s')],
    'validation': [('20005_00_0.04s', '20005_00_10s')],
    'test': [('10228_06_0.04s', '10228_00_10s'),
             ('10003_00_0.1s', '10003_00_10s')],
}
_SID_FILES = {'train': 'Sony_train_list.txt', 'validation': 'Sony_val_list.txt',
              'test': 'Sony_test_list.txt'}


def make_sid_sony(root: str) -> Tree:
  m = os.path.join(root, 'SID')
  expected = {}
  for split, rows in SID_LISTS.items():
    lines, out = [], {}
    for short, long_ in rows:
      lq = os.path.join(m, 'Sony', 'short_resized', short + '.png')
      gt = os.path.join(m, 'Sony', 'long_resized', long_ + '.png')
      gt_img = random_image(long_)
      if not os.path.exists(gt):
        save(gt, gt_img)
      save(lq, 255 - gt_img)
      out[short] = (lq, gt)
      lines.append(f'./Sony/short/{short}.ARW ./Sony/long/{long_}.ARW '
                   'ISO200 F8\n')
    with open(os.path.join(m, _SID_FILES[split]), 'w') as f:
      f.writelines(lines)
    expected[split] = out  # List order.
  return Tree(m, expected)


def make_sice(root: str) -> Tree:
  m = os.path.join(root, 'SICE')
  train = {}
  for scene, exposures in (('1', ('1', '2')), ('2', ('1', '2', '3'))):
    gt = save(os.path.join(m, 'Dataset', 'label', scene + '.JPG'),
              random_image('label' + scene))
    for e in exposures:
      lq = save(os.path.join(m, 'Dataset', 'train', scene, e + '.JPG'),
                random_image(f'exp{scene}{e}'))
      train[f'{scene}_{e}'] = (lq, gt)
  tests = {}
  for split, folder in (('test_grad', 'SICE_Grad'), ('test_mix', 'SICE_Mix')):
    out = {}
    for n in ('1', '2', '3'):
      gt = os.path.join(m, 'SICE_Reshape', n + '.JPG')
      if not os.path.exists(gt):
        save(gt, random_image('reshape' + n))
      out[n] = (save(os.path.join(m, folder, n + '.JPG'),
                     random_image(folder + n)), gt)
    tests[split] = out
  return Tree(m, {'train': _sorted(train), **tests})


def make_baid(root: str) -> Tree:
  m = os.path.join(root, 'BAID')
  train = _folder_pairs(m, 'train', 'BAID-train/resize_input',
                        'BAID-train/resize_gt', ['0001', '0002', '0003'])
  test = _folder_pairs(m, 'test', 'BAID-test/input', 'BAID-test/gt',
                       ['0101', '0102'])
  return Tree(m, {'train': train, 'test': test})


UIEB_NAMES = tuple(f'{i}_img_' for i in range(1, 96))


def make_uieb(root: str, *, n: int = 95) -> Tree:
  """UIEB pairs; ``expected`` is filled by the split rule in the test."""
  m = os.path.join(root, 'UIEB')
  pairs = _folder_pairs(m, 'uieb', 'raw-890', 'reference-890',
                        UIEB_NAMES[:n], h=4, w=6)
  return Tree(m, {'all': _sorted(pairs)})


def _seeded_split(tree: Tree, rule) -> Tree:
  """``tree`` with its ``'all'`` pairs split by ``rule`` (on file names)."""
  pairs = tree.expected['all']
  by_file = {os.path.basename(lq): n for n, (lq, _) in pairs.items()}
  out = {}
  for split, files in zip(('train', 'test'), rule(list(by_file))):
    out[split] = _sorted({by_file[f]: pairs[by_file[f]] for f in files})
  return Tree(tree.manual_dir, out)


def make_lsui(root: str) -> Tree:
  m = os.path.join(root, 'LSUI')
  out = {}
  for i in range(1, 11):
    n = f'{i}'
    out[n] = (save(os.path.join(m, 'input', n + '.jpg'),
                   random_image('lsui' + n, 8, 8)),
              save(os.path.join(m, 'GT', n + '.jpg'),
                   random_image('lsuigt' + n, 8, 8)))
  return Tree(m, {'all': _sorted(out)})


def make_fivek(root: str) -> Tree:
  m = os.path.join(root, 'FiveK')
  expected = {}
  for split, names in (('train', ('a0001', 'a0002', 'a0003')),
                       ('test', ('a4501', 'a4502'))):
    out = {}
    for n in names:
      out[n] = (save(os.path.join(m, split, 'input', n + '.jpg'),
                     random_image('in' + n)),
                save(os.path.join(m, split, 'target', n + '.jpg'),
                     random_image('tg' + n)))
    expected[split] = out
  return Tree(m, expected)


_UNPAIRED = {'dicm': ('DICM', '.jpg'), 'lime': ('LIME', '.bmp'),
             'mef': ('MEF', '.png'), 'npe': ('NPE', '.jpg'),
             'vv': ('VV', '.jpg')}


def make_unpaired(root: str, config: str) -> Tree:
  m = os.path.join(root, 'unpaired')
  expected = {}
  for c, (folder, ext) in _UNPAIRED.items():
    out = {}
    for n in ('01', '02', '03'):
      out[n] = (save(os.path.join(m, folder, n + ext),
                     random_image(folder + n)), None)
    expected[c] = out
  return Tree(m, {'test': expected[config]})


def make_fundus(root: str) -> Tree:
  m = os.path.join(root, 'eyeq')
  out = {n: (save(os.path.join(m, 'sample', n + '.jpeg'),
                  random_image('fundus' + n)), None)
         for n in ('10_left', '10_right')}
  return Tree(m, {'test': out})


def make_rain100l(root: str) -> Tree:
  m = os.path.join(root, 'RainL')
  expected = {}
  for split, folder, idx in (('train', 'trainL', (1, 2, 3)),
                             ('test', 'testL', (1, 2))):
    names = [f'rain-{i:03d}' for i in idx]
    expected[split] = _folder_pairs(
        m, split, f'{folder}/LQ', f'{folder}/GT', names,
        gt_name=lambda n: 'no' + n)
  return Tree(m, expected)


def make_raindrop(root: str, config: str = 'default') -> Tree:
  m = os.path.join(root, 'RainDrop')
  expected = {}
  for split, idx in (('train', (0, 1, 2)), ('test_a', (0, 1)),
                     ('test_b', (0, 5))):
    names = [f'{i}_rain' for i in idx]
    expected[split] = _folder_pairs(
        m, split, f'{split}/data', f'{split}/gt', names,
        gt_name=lambda n: n.replace('_rain', '_clean'))
  if config != 'with_test_b':
    del expected['test_b']
  return Tree(m, expected)


def make_denoise(root: str) -> Tree:
  m = os.path.join(root, 'Denoising')
  expected = {}
  for split, folder, names in (('train', 'train/DFWB', ('0001', '0002', 'x1')),
                               ('test', 'test/CBSD68', ('0000', '0001'))):
    expected[split] = {n: (None, save(os.path.join(m, folder, n + '.png'),
                                      random_image(folder + n)))
                       for n in names}
  return Tree(m, expected)


def make_demo(root: str) -> Tree:
  """The bundled demo set, built by ``demo_data`` itself (16-px crops)."""
  m = os.path.join(root, 'demo_data')
  manifest = demo_data.make_demo_pairs(m, size=16, train_crops_per_image=1)
  expected = {'train': {}, 'test': {}}
  for p in manifest['pairs']:
    expected[p['split']][os.path.splitext(p['name'])[0]] = (
        os.path.join(m, p['split'], 'low', p['name']),
        os.path.join(m, p['split'], 'high', p['name']))
  return Tree(m, {k: _sorted(v) for k, v in expected.items()})


def make_demo_denoise(root: str) -> Tree:
  """The demo set's clean halves (the IR-Flow ``demo`` task)."""
  tree = make_demo(root)
  return Tree(tree.manual_dir, {
      split: {n: (None, gt) for n, (_, gt) in pairs.items()}
      for split, pairs in tree.expected.items()})


def make_dehaze(root: str) -> Tree:
  """RESIDE-6K as DehazeFormer ships it: one name in hazy/ and GT/."""
  m = os.path.join(root, 'RESIDE-6K')
  return Tree(m, {
      'train': _sorted(_folder_pairs(m, 'train', 'train/hazy', 'train/GT',
                                     ['1', '2', '0025'])),
      'test': _sorted(_folder_pairs(m, 'test', 'test/hazy', 'test/GT',
                                    ['1400', '0001'])),
  })


def make_deblur(root: str) -> Tree:
  """GoPro in Restormer's ``Datasets/`` layout (train crops, test frames)."""
  m = os.path.join(root, 'Datasets')
  crops = ['GOPR0372_07_00-000047-1', 'GOPR0372_07_00-000047-2',
           'GOPR0374_11_00-000001-1']
  frames = ['GOPR0384_11_00-000001', 'GOPR0384_11_00-000002']
  return Tree(m, {
      'train': _sorted(_folder_pairs(m, 'train', 'train/GoPro/input_crops',
                                     'train/GoPro/target_crops', crops)),
      'test': _sorted(_folder_pairs(m, 'test', 'test/GoPro/input',
                                    'test/GoPro/target', frames)),
  })


def make_sr(root: str) -> Tree:
  """DIV2K: ``NNNNx4.png`` LR (here already at HR size) ↔ ``NNNN.png`` HR."""
  m = os.path.join(root, 'DIV2K')
  x4 = lambda n: n[:-2]  # '0001x4' -> '0001'
  return Tree(m, {
      'train': _folder_pairs(m, 'train', 'DIV2K_train_LR_unknown/X4',
                             'DIV2K_train_HR', ['0001x4', '0002x4', '0010x4'],
                             gt_name=x4),
      'test': _folder_pairs(m, 'test', 'DIV2K_valid_LR_unknown/X4',
                            'DIV2K_valid_HR', ['0801x4', '0802x4'],
                            gt_name=x4),
  })


# dataset name → fixture maker. UIEB / LSUI fill their splits in the test.
MAKERS = {
    'lol_v1': make_lol_v1,
    'lol_v2_real': make_lol_v2_real,
    'lol_v2_syn': make_lol_v2_syn,
    'lol_blur': make_lol_blur,
    'sid_sony': make_sid_sony,
    'sice': make_sice,
    'baid': make_baid,
    'fivek': make_fivek,
    'unpaired_llie/dicm': lambda r: make_unpaired(r, 'dicm'),
    'unpaired_llie/lime': lambda r: make_unpaired(r, 'lime'),
    'unpaired_llie/mef': lambda r: make_unpaired(r, 'mef'),
    'unpaired_llie/npe': lambda r: make_unpaired(r, 'npe'),
    'unpaired_llie/vv': lambda r: make_unpaired(r, 'vv'),
    'fundus': make_fundus,
    'rain100l': make_rain100l,
    'raindrop/default': lambda r: make_raindrop(r, 'default'),
    'raindrop/with_test_b': lambda r: make_raindrop(r, 'with_test_b'),
    'denoise': make_denoise,
}

# Every name of datasets.names() → a maker whose ``expected`` has the
# layout's splits (UIEB / LSUI split by the builder's seeded rule).
PUBLIC_MAKERS = {
    **MAKERS,
    'unpaired_llie': lambda r: make_unpaired(r, 'dicm'),
    'raindrop': make_raindrop,
    'uieb': lambda r: _seeded_split(make_uieb(r, n=10),
                                    splits_lib.reference_split),
    'uieb/restorect': lambda r: _seeded_split(make_uieb(r, n=10),
                                              splits_lib.reference_split),
    'uieb/t90': lambda r: _seeded_split(make_uieb(r),
                                        splits_lib.uieb_t90_split),
    'lsui': lambda r: _seeded_split(make_lsui(r), splits_lib.reference_split),
    'lsui/restorect': lambda r: _seeded_split(make_lsui(r),
                                              splits_lib.reference_split),
    'derain': make_rain100l,
    'dehaze': make_dehaze,
    'deblur': make_deblur,
    'sr': make_sr,
    'demo': make_demo,
    'demo_denoise': make_demo_denoise,
}


def public_tree(name: str, root: str) -> Tree:
  """Writes ``name``'s public-download tree under ``root``; its records."""
  if name not in PUBLIC_MAKERS:
    raise ValueError(f'No fixture for {name!r}; known: '
                     f'{", ".join(sorted(PUBLIC_MAKERS))}.')
  return PUBLIC_MAKERS[name](root)


def make_public_layout(name: str, root: str) -> str:
  """Writes ``name``'s tree (2-3 tiny pairs per split where the layout
  allows; shipped split lists fix LOL-v1 / LOL-v2-Real test at 15 / 100)
  under ``root`` and returns the data dir to pass for ``name``."""
  return public_tree(name, root).manual_dir
