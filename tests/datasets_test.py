"""Tests for restorect_jax.datasets: every builder on generated fixture trees.

Each builder is prepared from a tiny tree laid out like its public download
(tests/dataset_fixtures.py), read back through grain and compared with the
decoded source files; split lists, split rules and hashes, the LOL overlap
warning and every kind of bad input are checked.
"""

import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
from unittest import mock
import warnings

import grain
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from PIL import Image
import tensorflow_datasets as tfds

import dataset_fixtures as fx
import testutil
from restorect_jax import datasets
from restorect_jax.data import image_io
from restorect_jax.data import input_pipeline
from restorect_jax.datasets import splits

tfds.disable_progress_bar()


class _TmpTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = tempfile.mkdtemp(prefix='datasets_test_')
    self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
    self.data_dir = os.path.join(self.tmp, 'tfds')

  def prepare(self, name, tree, **kw):
    return datasets.prepare(name, tree.manual_dir, self.data_dir, **kw)


def _sources():
  """restorect_jax.data.sources, imported late (it loads JAX)."""
  from restorect_jax.data import sources  # pylint: disable=g-import-not-at-top
  return sources


def _read_all(source):
  """Every record through grain, in order."""
  return list(grain.MapDataset.source(source))


# ----------------------------------------------------------------------------
# Split files and rules.
# ----------------------------------------------------------------------------


class SplitFilesTest(_TmpTest):

  def test_shipped_lists_verify(self):
    sums = splits.verify_split_files()
    self.assertEqual(set(sums), {'lol_v1_eval15.txt', 'lol_v2_real_test.txt'})
    for name, digest in sums.items():
      self.assertEqual(
          splits.names_sha256(splits.read_split_file(name)), digest)
    self.assertEqual(tuple(splits.read_split_file('lol_v1_eval15.txt')),
                     fx.LOL_V1_EVAL15)
    self.assertEqual(
        splits.read_split_file('lol_v2_real_test.txt'),
        [f'low{i:05d}' for i in range(690, 790)])

  def test_tampered_or_unlisted_file_fails(self):
    copy = os.path.join(self.tmp, 'splits')
    shutil.copytree(splits.SPLITS_DIR, copy)
    with open(os.path.join(copy, 'lol_v1_eval15.txt'), 'a') as f:
      f.write('781\n')
    with self.assertRaisesRegex(splits.SplitHashError, 'lol_v1_eval15.txt'):
      splits.verify_split_files(copy)
    with self.assertRaisesRegex(splits.SplitHashError, 'lol_v1_eval15.txt'):
      splits.read_split_file('lol_v1_eval15.txt', copy)
    shutil.copy(os.path.join(splits.SPLITS_DIR, 'lol_v1_eval15.txt'), copy)
    with open(os.path.join(copy, 'extra.txt'), 'w') as f:
      f.write('a\n')
    with self.assertRaisesRegex(splits.SplitHashError, 'extra.txt.*not '
                                'listed'):
      splits.verify_split_files(copy)


class SplitRuleTest(parameterized.TestCase):

  def test_reference_split_matches_reference_procedure(self):
    names = [f'{i}_img_.png' for i in range(1, 891)]
    train, test = splits.reference_split(list(reversed(names)))
    self.assertLen(train, 712)
    self.assertLen(test, 178)
    # The reference script: sorted inputs and GTs zipped, module-level
    # random.seed(42) + random.shuffle, cut at int(0.8 * n).
    state = random.getstate()
    try:
      combined = list(zip(sorted(names), sorted(names), strict=True))
      random.seed(42)
      random.shuffle(combined)
    finally:
      random.setstate(state)
    cut = int(0.8 * len(combined))
    self.assertEqual(train, sorted(a for a, _ in combined[:cut]))
    self.assertEqual(test, sorted(a for a, _ in combined[cut:]))
    self.assertEqual(splits.reference_split(names), (train, test))

  def test_t90_split(self):
    names = [f'{i}.png' for i in range(890)]
    train, test = splits.uieb_t90_split(names)
    self.assertLen(train, 800)
    self.assertLen(test, 90)
    self.assertEqual(sorted(train + test), sorted(names))
    _, ref_test = splits.reference_split(names)
    self.assertTrue(set(test) <= set(ref_test))
    self.assertNotEqual(test, sorted(names)[-90:])  # Shuffled, not a tail.
    with self.assertRaisesRegex(ValueError, 'more than 90'):
      splits.uieb_t90_split(names[:90])

  def test_names_sha256_is_split_file_bytes(self):
    path = os.path.join(splits.SPLITS_DIR, 'lol_v1_eval15.txt')
    self.assertEqual(splits.names_sha256(list(fx.LOL_V1_EVAL15)),
                     splits.file_sha256(path))
    self.assertNotEqual(splits.names_sha256(['1', '2']),
                        splits.names_sha256(['2', '1']))


# ----------------------------------------------------------------------------
# Every builder from its fixture tree.
# ----------------------------------------------------------------------------


class BuildersTest(_TmpTest):

  def test_registry_covers_every_builder(self):
    covered = {n.split('/')[0] for n in fx.MAKERS} | {'uieb', 'lsui'}
    self.assertEqual(covered, set(datasets.BUILDERS))
    for cls in datasets.BUILDERS.values():
      self.assertIn('<- --manual_dir', cls.MANUAL_DOWNLOAD_INSTRUCTIONS)

  def test_unprepared_builders_leave_no_temporary_folders(self):
    # tfds' DatasetInfo.initialize_from_bucket made an empty tmp*tfds
    # folder per builder (never removed) whenever no prepared version exists.
    scratch = os.path.join(self.tmp, 'scratch')
    os.makedirs(scratch)
    with mock.patch.object(tempfile, 'tempdir', scratch):
      for name in datasets.BUILDERS:
        datasets.registry.builder(name, os.path.join(self.tmp, 'none'))
    self.assertEqual(os.listdir(scratch), [])

  @parameterized.named_parameters(
      (name.replace('/', '_'), name) for name in sorted(fx.MAKERS))
  def test_prepare_and_read_through_grain(self, name):
    tree = fx.MAKERS[name](self.tmp)
    b = self.prepare(name, tree)
    kind = b.info.metadata['kind']
    self.assertEqual(sorted(b.info.metadata['splits']), sorted(tree.expected))
    for split, expected in tree.expected.items():
      src = datasets.data_source(name, split, self.data_dir)
      records = _read_all(src)
      self.assertEqual([r['name'] for r in records], list(expected))
      self.assertEqual(src.names, list(expected))
      self.assertEqual(src.names_sha256, splits.names_sha256(list(expected)))
      # Reading the folders through the registry gives the same records.
      self.assertEqual(
          [n for n, _, _ in datasets.paired_files(name, tree.manual_dir,
                                                  split)], src.names)
      for rec in records:
        lq_path, gt_path = expected[rec['name']]
        self.assertIsInstance(rec['name'], str)
        if kind == 'unpaired':
          self.assertNotIn('gt', rec)
          self.assertFalse(src.has_gt)
        if lq_path:
          np.testing.assert_array_equal(
              rec['lq'], image_io.read_image_uint8(lq_path))
        if gt_path:
          gt = image_io.read_image_uint8(gt_path)
          np.testing.assert_array_equal(rec['gt'], gt)
          self.assertEqual(rec['gt'].dtype, np.uint8)
          self.assertEqual(rec['gt'].shape[-1], 3)
        if kind == 'clean':  # Denoising: lq is the clean image itself.
          self.assertIs(rec['lq'], rec['gt'])
        if kind == 'paired' and lq_path.endswith('.png'):
          np.testing.assert_array_equal(rec['gt'], 255 - rec['lq'])
      info = b.info.metadata['splits'][split]
      self.assertEqual(info['count'], len(expected))
      self.assertEqual(set(info['pixel_sha256']), set(expected))
      if info.get('names_file'):
        self.assertEqual(info['names_sha256'],
                         splits.read_sums()[info['names_file']])
    if name == 'denoise':
      self.assertAlmostEqual(b.info.metadata['extra']['noise']['sigma'],
                             25 / 255)

  def test_prepared_metadata_survives_reload(self):
    tree = fx.make_lol_v1(self.tmp)
    self.prepare('lol_v1', tree)
    b = tfds.builder_from_directory(
        datasets.builder('lol_v1', self.data_dir).data_dir)
    md = b.info.metadata
    self.assertEqual(md['splits']['test']['names'], list(fx.LOL_V1_EVAL15))
    self.assertEqual(md['splits']['test']['names_file'], 'lol_v1_eval15.txt')
    self.assertEqual(md['splits']['train']['sizes']['2'], [fx.H, fx.W])

  @parameterized.named_parameters(('restorect', 'restorect', 76, 19),
                                  ('t90', 't90', 5, 90))
  def test_uieb_split_rules(self, config, n_train, n_test):
    tree = fx.make_uieb(self.tmp)
    files = [os.path.basename(lq) for lq, _ in tree.expected['all'].values()]
    rule = (splits.uieb_t90_split if config == 't90'
            else splits.reference_split)
    want_train, want_test = rule(files)
    name = f'uieb/{config}'
    self.prepare(name, tree)
    got = {}
    for split, want in (('train', want_train), ('test', want_test)):
      src = datasets.data_source(name, split, self.data_dir)
      self.assertEqual(src.names, [os.path.splitext(f)[0] for f in want])
      got[split] = src.names_sha256
      for rec in _read_all(src):
        np.testing.assert_array_equal(rec['gt'], 255 - rec['lq'])
    self.assertLen(want_train, n_train)
    self.assertLen(want_test, n_test)
    # Reproducible: a second prepare elsewhere draws the same splits.
    other = os.path.join(self.tmp, 'tfds2')
    datasets.prepare(name, tree.manual_dir, other)
    for split in ('train', 'test'):
      self.assertEqual(
          datasets.data_source(name, split, other).names_sha256, got[split])
      datasets.data_source(name, split, other,
                           expected_names_sha256=got[split])

  def test_lsui_split_and_metadata(self):
    tree = fx.make_lsui(self.tmp)
    b = self.prepare('lsui', tree)
    files = [os.path.basename(lq) for lq, _ in tree.expected['all'].values()]
    want_train, want_test = splits.reference_split(files)
    md = b.info.metadata
    self.assertEqual(md['config'], 'restorect')
    self.assertIn('random.seed(42)', md['split_rule'])
    for split, want in (('train', want_train), ('test', want_test)):
      names = [os.path.splitext(f)[0] for f in want]
      self.assertEqual(md['splits'][split]['names'], names)
      self.assertEqual(md['splits'][split]['names_sha256'],
                       splits.names_sha256(names))
    self.assertEqual((len(want_train), len(want_test)), (8, 2))
    with self.assertRaisesRegex(ValueError, 'not the split'):
      datasets.data_source('lsui', 'test', self.data_dir,
                           expected_names_sha256='0' * 64)

  def test_prepare_reuses_then_overwrites(self):
    tree = fx.make_fundus(self.tmp)
    self.prepare('fundus', tree)
    fx.save(os.path.join(tree.manual_dir, 'sample', '11_left.jpeg'),
            fx.random_image('new'))
    self.prepare('fundus', tree)  # Already prepared: reused as is.
    self.assertLen(datasets.data_source('fundus', 'test', self.data_dir), 2)
    self.prepare('fundus', tree, overwrite=True)
    src = datasets.data_source('fundus', 'test', self.data_dir)
    self.assertEqual(src.names, ['10_left', '10_right', '11_left'])

  def test_unpaired_gt_from_lq(self):
    tree = fx.make_unpaired(self.tmp, 'vv')
    self.prepare('unpaired_llie/vv', tree)
    src = datasets.data_source('unpaired_llie/vv', 'test', self.data_dir,
                               gt_from_lq=True)
    self.assertTrue(src.has_gt)
    rec = src[0]
    np.testing.assert_array_equal(rec['gt'], rec['lq'])
    evals = list(input_pipeline.eval_dataset(src))
    self.assertEqual([e['name'] for e in evals], ['01', '02', '03'])

  def test_lol_v1_through_input_pipeline(self):
    tree = fx.make_lol_v1(self.tmp)
    self.prepare('lol_v1', tree)
    train = datasets.data_source('lol_v1', 'train', self.data_dir)
    ds = input_pipeline.train_dataset(train, patch_size=8, batch_size=2,
                                      seed=0)
    it = iter(ds)
    for _ in range(4):
      batch = next(it)
      self.assertEqual(batch['lq'].shape, (2, 8, 8, 3))
      lq = np.round(batch['lq'] * 255).astype(int)
      gt = np.round(batch['gt'] * 255).astype(int)
      np.testing.assert_array_equal(gt, 255 - lq)  # Crops stay aligned.
    copy = pickle.loads(pickle.dumps(train))  # For grain worker processes.
    np.testing.assert_array_equal(copy[1]['gt'], train[1]['gt'])
    self.assertEqual(copy[1]['name'], train[1]['name'])
    test = datasets.data_source('lol_v1', 'test', self.data_dir)
    evals = list(input_pipeline.eval_dataset(test))
    self.assertEqual([e['name'] for e in evals], list(fx.LOL_V1_EVAL15))
    self.assertEqual(evals[0]['lq'].shape, (1, fx.H, fx.W, 3))


# ----------------------------------------------------------------------------
# LOL-v1 train / LOL-v2-Real test overlap.
# ----------------------------------------------------------------------------


class OverlapTest(_TmpTest):

  def test_shared_image_is_found_by_content_and_warned(self):
    v2 = fx.make_lol_v2(self.tmp)
    v1 = fx.make_lol_v1(self.tmp)
    shared = fx.random_image('rtest/low00690', 8, 8)  # v2 test low00690.
    fx.write_pair(os.path.join(v1.manual_dir, 'our485/low/7.png'),
                  os.path.join(v1.manual_dir, 'our485/high/7.png'),
                  image=shared)
    self.prepare('lol_v1', v1)
    with self.assertWarnsRegex(datasets.DatasetOverlapWarning,
                               r'lol_v1:train.*lol_v2_real:test.*7=low00690'):
      self.prepare('lol_v2_real', v2['lol_v2_real'])
    train = datasets.data_source('lol_v1', 'train', self.data_dir)
    test = datasets.data_source('lol_v2_real', 'test', self.data_dir)
    self.assertEqual(datasets.find_overlaps(train, test), [('7', 'low00690')])
    with self.assertWarns(datasets.DatasetOverlapWarning):
      self.assertLen(datasets.check_overlap(train, test), 1)
    self.prepare('lol_v2_syn', v2['lol_v2_syn'])
    syn = datasets.data_source('lol_v2_syn', 'test', self.data_dir)
    with warnings.catch_warnings():
      warnings.simplefilter('error', datasets.DatasetOverlapWarning)
      self.assertEqual(datasets.check_overlap(train, syn), [])


# ----------------------------------------------------------------------------
# Bad input: clear errors naming the file, or documented conversions.
# ----------------------------------------------------------------------------


class BadInputTest(_TmpTest):

  def assert_not_prepared(self, name):
    self.assertFalse(datasets.is_prepared(name, self.data_dir))

  def test_missing_manual_folder(self):
    missing = os.path.join(self.tmp, 'nope')
    with self.assertRaisesRegex(datasets.ManualDirError,
                                r'(?s)nope.*our485/low'):
      datasets.prepare('lol_v1', missing, self.data_dir)

  def test_missing_sub_folder_names_it_and_shows_tree(self):
    tree = fx.make_lol_v1(self.tmp)
    shutil.rmtree(os.path.join(tree.manual_dir, 'eval15', 'high'))
    with self.assertRaisesRegex(datasets.ManualDirError,
                                r"(?s)'eval15/high'.*LOLdataset/.*our485"):
      self.prepare('lol_v1', tree)
    self.assert_not_prepared('lol_v1')

  def test_parent_folder_gets_a_hint(self):
    tree = fx.make_fivek(self.tmp)
    with self.assertRaisesRegex(datasets.ManualDirError,
                                'Found it under .*FiveK'):
      datasets.prepare('fivek', self.tmp, self.data_dir)
    del tree

  def test_unpaired_names_are_listed(self):
    tree = fx.make_fivek(self.tmp)
    fx.save(os.path.join(tree.manual_dir, 'train/input/a0009.jpg'),
            fx.random_image('x'))
    with self.assertRaisesRegex(ValueError, r'Unmatched.*a0009\.jpg'):
      self.prepare('fivek', tree)
    self.assert_not_prepared('fivek')

  def test_ambiguous_names(self):
    tree = fx.make_baid(self.tmp)
    fx.save(os.path.join(tree.manual_dir, 'BAID-test/input/0101.jpg'),
            fx.random_image('y'))
    with self.assertRaisesRegex(ValueError, r'Ambiguous.*0101'):
      self.prepare('baid', tree)

  def test_folder_differs_from_split_list(self):
    tree = fx.make_lol_v1(self.tmp)
    fx.write_pair(os.path.join(tree.manual_dir, 'eval15/low/781.png'),
                  os.path.join(tree.manual_dir, 'eval15/high/781.png'))
    for role in ('low', 'high'):
      os.remove(os.path.join(tree.manual_dir, 'eval15', role, '22.png'))
    with self.assertRaisesRegex(
        datasets.SplitMismatchError,
        r'lol_v1_eval15.txt.*missing: 22.*not in the list: 781'):
      self.prepare('lol_v1', tree)

  def test_size_mismatch_names_both_files(self):
    tree = fx.make_rain100l(self.tmp)
    gt = os.path.join(tree.manual_dir, 'testL/GT/norain-002.png')
    fx.save(gt, fx.random_image('z', fx.H, fx.W + 2))
    with self.assertRaisesRegex(
        ValueError, r'Size mismatch: .*testL/LQ/rain-002.png is 16x24.*'
        r'testL/GT/norain-002.png is 16x26'):
      self.prepare('rain100l', tree)
    self.assert_not_prepared('rain100l')

  @parameterized.named_parameters(('corrupt', 'corrupt'),
                                  ('truncated', 'truncated'))
  def test_bad_file_is_named_then_fixed(self, how):
    tree = fx.make_raindrop(self.tmp)
    path = os.path.join(tree.manual_dir, 'test_a/gt/1_clean.png')
    good = open(path, 'rb').read()
    data = b'not an image at all' if how == 'corrupt' else good[:len(good)
                                                                // 2]
    with open(path, 'wb') as f:
      f.write(data)
    with self.assertRaisesRegex(image_io.ImageReadError,
                                'test_a/gt/1_clean.png'):
      self.prepare('raindrop', tree)
    self.assert_not_prepared('raindrop')
    with open(path, 'wb') as f:
      f.write(good)
    self.prepare('raindrop', tree)
    self.assertLen(datasets.data_source('raindrop', 'test_a',
                                        self.data_dir), 2)

  def test_grayscale_rgba_16bit_are_converted_as_documented(self):
    tree = fx.make_lol_v2(self.tmp)['lol_v2_syn']
    m = tree.manual_dir
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (fx.H, fx.W), np.uint8)
    rgba = rng.integers(0, 256, (fx.H, fx.W, 4), np.uint8)
    g16 = rng.integers(0, 65536, (fx.H, fx.W, 1), np.uint16)
    c16 = rng.integers(0, 65536, (fx.H, fx.W, 3), np.uint16)
    Image.fromarray(gray, 'L').save(f'{m}/Synthetic/Train/Low/r000da4f2t.png')
    Image.fromarray(rgba, 'RGBA').save(
        f'{m}/Synthetic/Train/Normal/r000da4f2t.png')
    testutil.write_png16(f'{m}/Synthetic/Test/Low/r00816405t.png', g16)
    testutil.write_png16(f'{m}/Synthetic/Test/Normal/r00816405t.png', c16)
    b = self.prepare('lol_v2_syn', tree)
    train = {r['name']: r for r in _read_all(
        datasets.data_source('lol_v2_syn', 'train', self.data_dir))}
    rec = train['r000da4f2t']
    np.testing.assert_array_equal(rec['lq'], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(rec['gt'], rgba[..., :3])
    rec = datasets.data_source('lol_v2_syn', 'test', self.data_dir)[0]
    self.assertEqual(rec['name'], 'r00816405t')
    np.testing.assert_array_equal(
        rec['lq'], np.repeat((g16 >> 8).astype(np.uint8), 3, -1))
    np.testing.assert_array_equal(rec['gt'], (c16 >> 8).astype(np.uint8))
    conv = {**b.info.metadata['splits']['train']['conversions'],
            **b.info.metadata['splits']['test']['conversions']}
    self.assertEqual(
        sorted((os.path.relpath(p, m), c) for p, c in conv.items()), [
            ('Synthetic/Test/Low/r00816405t.png',
             '16-bit grayscale (I;16) -> RGB (high byte, repeated)'),
            ('Synthetic/Test/Normal/r00816405t.png',
             '16-bit RGB -> 8-bit (high byte)'),
            ('Synthetic/Train/Low/r000da4f2t.png',
             'grayscale (L) -> RGB (repeated)'),
            ('Synthetic/Train/Normal/r000da4f2t.png',
             'RGBA -> RGB (alpha dropped, not composited)'),
        ])

  def test_images_smaller_than_patch(self):
    tree = fx.make_lol_v2(self.tmp)['lol_v2_real']
    self.prepare('lol_v2_real', tree)
    with self.assertRaisesRegex(ValueError,
                                r'100 images are smaller than 9.*low00690 '
                                r'\(8x8\)'):
      datasets.data_source('lol_v2_real', 'test', self.data_dir, min_size=9)
    self.assertLen(datasets.data_source('lol_v2_real', 'test', self.data_dir,
                                        min_size=8), 100)
    self.assertLen(datasets.data_source('lol_v2_real', 'train', self.data_dir,
                                        min_size=16), 3)

  def test_sid_list_naming_a_missing_file(self):
    tree = fx.make_sid_sony(self.tmp)
    os.remove(os.path.join(tree.manual_dir,
                           'Sony/short_resized/10003_00_0.1s.png'))
    with self.assertRaisesRegex(FileNotFoundError,
                                r'Sony_test_list.txt.*line 2: .*10003_00_0.1s'):
      self.prepare('sid_sony', tree)
    with open(os.path.join(tree.manual_dir, 'Sony_test_list.txt'), 'w') as f:
      f.write('./Sony/short/10228_06_0.04s.ARW\n')
    with self.assertRaisesRegex(ValueError, r'Sony_test_list.txt:1'):
      self.prepare('sid_sony', tree)

  def test_sice_scene_without_label(self):
    tree = fx.make_sice(self.tmp)
    os.remove(os.path.join(tree.manual_dir, 'Dataset/label/2.JPG'))
    with self.assertRaisesRegex(ValueError,
                                r'scene folders .* without a label.*: 2'):
      self.prepare('sice', tree)

  def test_unknown_names_and_unprepared(self):
    with self.assertRaisesRegex(ValueError, 'Unknown dataset'):
      datasets.builder('lol_v3')
    with self.assertRaisesRegex(ValueError, "no config 'x'"):
      datasets.builder('uieb/x')
    with self.assertRaisesRegex(FileNotFoundError,
                                'restorect_jax.datasets.prepare'):
      datasets.data_source('lol_v1', 'train', self.data_dir)
    tree = fx.make_fundus(self.tmp)
    self.prepare('fundus', tree)
    with self.assertRaisesRegex(ValueError, "no split 'train'"):
      datasets.data_source('fundus', 'train', self.data_dir)


class PrepareCliTest(_TmpTest):

  def test_cli_prepares_and_prints_hashes(self):
    tree = fx.make_denoise(self.tmp)
    cmd = [sys.executable, '-m', 'restorect_jax.datasets.prepare',
           '--dataset=denoise', f'--manual_dir={tree.manual_dir}',
           f'--data_dir={self.data_dir}']
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         cwd=testutil.REPO, check=False)
    self.assertEqual(out.returncode, 0, out.stderr[-3000:])
    names = list(tree.expected['test'])
    self.assertIn(f'test: 2 records, names sha256 '
                  f'{splits.names_sha256(names)}', out.stdout)
    self.assertIn("'sigma_255': 25.0", out.stdout)
    self.assertTrue(datasets.is_prepared('denoise', self.data_dir))
    bad = subprocess.run(cmd[:3] + ['--dataset=denoise',
                                    f'--manual_dir={self.tmp}/missing'],
                         capture_output=True, text=True, timeout=120,
                         cwd=testutil.REPO, check=False)
    self.assertNotEqual(bad.returncode, 0)
    self.assertIn('train/DFWB', bad.stderr)


# ----------------------------------------------------------------------------
# The train loop reads prepared datasets through config.input.tfds.
# ----------------------------------------------------------------------------


class TrainWiringTest(_TmpTest):

  def _config(self, arg):
    if str(testutil.REPO) not in sys.path:
      sys.path.insert(0, str(testutil.REPO))
    from configs import restorect_s1  # pylint: disable=g-import-not-at-top
    return restorect_s1.get_config(arg)

  def test_config_tfds_source_and_eval_resize(self):
    self.prepare('uieb', fx.make_uieb(os.path.join(self.tmp, 'raw')))
    config = self._config('dataset=folder,runlocal')
    config.input.tfds.name = 'uieb'
    config.input.tfds.data_dir = self.data_dir
    config.input.eval_resize = 'square'
    config.input.eval_resize_size = 32
    source = _sources().train_source(config, self.tmp)
    expected = datasets.data_source('uieb', 'train', self.data_dir)
    self.assertLen(source, len(expected))
    np.testing.assert_array_equal(source[0]['lq'], expected[0]['lq'])
    records = list(_sources().eval_records(config, self.tmp))
    self.assertLen(records, len(datasets.data_source('uieb', 'test',
                                                     self.data_dir)))
    for rec in records:
      self.assertEqual(rec['lq'].shape, (32, 32, 3))
      self.assertEqual(rec['gt'].shape, (32, 32, 3))
    config.input.tfds.eval_split = ''
    self.assertIsNone(_sources().eval_records(config, self.tmp))
    config.input.tfds.name = 'no_such_set'
    with self.assertRaisesRegex(Exception, 'no_such_set'):
      _sources().train_source(config, self.tmp)

  def test_config_dataset_reads_the_public_folders(self):
    # The README route: configs/restorect_s1.py:dataset=lol_v2_real with
    # input.data_dir at the unpacked LOL-v2 download (low/normal names).
    tree = fx.make_lol_v2_real(self.tmp)
    config = self._config('dataset=lol_v2_real,runlocal')
    config.input.data_dir = tree.manual_dir
    source = _sources().train_source(config, self.tmp)
    self.assertEqual(source.names, list(tree.expected['train']))
    self.assertEqual(source.gt_paths,
                     [gt for _, gt in tree.expected['train'].values()])
    records = list(_sources().eval_records(config, self.tmp))
    self.assertEqual([r['name'] for r in records],
                     list(tree.expected['test']))


if __name__ == '__main__':
  absltest.main()
