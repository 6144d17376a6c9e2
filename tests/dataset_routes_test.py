"""Every dataset name pairs its public-download layout through the registry.

For each name of ``datasets.names()`` a tiny tree laid out like the public
download, file names included (tests/dataset_fixtures.py), is read with
``datasets.paired_files`` / ``folder_source`` for every split: the count,
the order, each partner (by path and, for the PNG fixtures, by pixels:
``gt = 255 - lq``) and the kind (denoising reads one file as lq and gt;
unpaired sets have no gt). Also: the LOL-v2-Real stem-pairing bug of the old
config route, one-line errors for unknown names and missing folders,
``--show_tree`` for a layout-only name, ``pair_dirs`` for your own folders,
and agreement with ``datasets.prepare`` on the same tree.
"""

import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile

import grain
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import dataset_fixtures as fx
import testutil
from restorect_jax import datasets
from restorect_jax.data import image_io
from restorect_jax.data import input_pipeline


class _TmpTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = tempfile.mkdtemp(prefix='dataset_routes_test_')
    self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)


class RoutesTest(_TmpTest):

  def test_every_name_has_a_public_fixture(self):
    self.assertEqual(set(fx.PUBLIC_MAKERS), set(datasets.names()))
    # The names configs and CLIs take today (config_lib.DATASETS without
    # 'folder', config_lib.IRFLOW_TASKS with 'demo' as 'demo_denoise').
    for name in ('lol_v1', 'lol_v2_real', 'lol_v2_syn', 'demo', 'derain',
                 'raindrop', 'denoise', 'dehaze', 'deblur', 'sr',
                 'demo_denoise'):
      self.assertIn(name, datasets.names())

  @parameterized.named_parameters(
      (name.replace('/', '_'), name) for name in sorted(fx.PUBLIC_MAKERS))
  def test_pairs_the_public_layout(self, name):
    tree = fx.public_tree(name, self.tmp)
    layout = datasets.layout(name)
    self.assertEqual(sorted(layout.splits), sorted(tree.expected))
    if layout.train_split:
      self.assertIn(layout.train_split, tree.expected)
    self.assertEqual(layout.resolve_split('test'), layout.eval_split)
    self.assertEqual(layout.noise_sigma,
                     25 / 255 if layout.kind == 'clean' else 0.0)
    for split, expected in tree.expected.items():
      files = datasets.paired_files(name, tree.manual_dir, split)
      self.assertEqual([n for n, _, _ in files], list(expected))
      for record_name, lq, gt in files:
        want_lq, want_gt = expected[record_name]
        if layout.kind == 'clean':
          self.assertEqual((lq, gt), (want_gt, want_gt))
        elif layout.kind == 'unpaired':
          self.assertEqual((lq, gt), (want_lq, None))
        else:
          self.assertEqual((lq, gt), (want_lq, want_gt))
          self.assertNotEqual(lq, gt)
      src = datasets.folder_source(name, tree.manual_dir, split)
      self.assertLen(src, len(expected))
      self.assertEqual(src.names, list(expected))
      self.assertEqual(src.has_gt, layout.kind != 'unpaired')
      for rec, (_, lq, gt) in zip(grain.MapDataset.source(src), files):
        np.testing.assert_array_equal(rec['lq'],
                                      image_io.read_image_uint8(lq))
        if layout.kind == 'unpaired':
          self.assertNotIn('gt', rec)
          continue
        np.testing.assert_array_equal(rec['gt'],
                                      image_io.read_image_uint8(gt))
        if layout.kind == 'clean':
          self.assertIs(rec['lq'], rec['gt'])
        elif lq.endswith('.png') and name != 'demo':
          np.testing.assert_array_equal(rec['gt'], 255 - rec['lq'])

  def test_lol_v2_real_pairs_low_with_normal(self):
    data_dir = fx.make_public_layout('lol_v2_real', self.tmp)
    train = os.path.join(data_dir, 'Real_captured', 'Train')
    # The old route paired Train/Low with Train/Normal by stem.
    with self.assertRaisesRegex(ValueError, 'Unmatched image pairs'):
      input_pipeline.PairedFolderSource(os.path.join(train, 'Low'),
                                        os.path.join(train, 'Normal'))
    files = datasets.paired_files('lol_v2_real', data_dir, 'train')
    self.assertEqual(
        [(n, os.path.basename(lq), os.path.basename(gt))
         for n, lq, gt in files],
        [(f'low0000{i}', f'low0000{i}.png', f'normal0000{i}.png')
         for i in (1, 2, 3)])
    self.assertEqual(datasets.layout('lol_v2_real').pairing('test'),
                     'low_normal_prefix')

  def test_training_pipeline_keeps_partners_aligned(self):
    data_dir = fx.make_public_layout('lol_v2_real', self.tmp)
    src = datasets.folder_source('lol_v2_real', data_dir, 'train')
    src = pickle.loads(pickle.dumps(src))  # As grain worker processes do.
    batch = next(iter(input_pipeline.train_dataset(
        src, patch_size=8, batch_size=2, seed=0)))
    lq = np.round(batch['lq'] * 255).astype(int)
    gt = np.round(batch['gt'] * 255).astype(int)
    np.testing.assert_array_equal(gt, 255 - lq)

  @parameterized.named_parameters(('sice', 'sice'),
                                  ('raindrop_with_test_b',
                                   'raindrop/with_test_b'))
  def test_same_records_as_prepare(self, name):
    tree = fx.public_tree(name, os.path.join(self.tmp, 'raw'))
    data_dir = os.path.join(self.tmp, 'tfds')
    datasets.prepare(name, tree.manual_dir, data_dir)
    for split in tree.expected:
      prepared = datasets.data_source(name, split, data_dir)
      files = datasets.paired_files(name, tree.manual_dir, split)
      self.assertEqual([n for n, _, _ in files], prepared.names)


class ErrorsTest(_TmpTest):

  def test_unknown_name_is_one_line_listing_known_names(self):
    for name in ('lol_v3', 'folder', 'uieb/x'):
      with self.assertRaises(ValueError) as cm:
        datasets.layout(name)
      msg = str(cm.exception)
      self.assertNotIn('\n', msg)
      self.assertIn(f'Unknown dataset {name!r}', msg)
      self.assertIn('lol_v2_real', msg)
      self.assertIn('demo_denoise', msg)
    with self.assertRaisesRegex(ValueError, "no split 'validation'"):
      datasets.paired_files('lol_v1', self.tmp, 'validation')

  def test_missing_folder_is_one_line_with_the_tree_command(self):
    data_dir = fx.make_public_layout('raindrop', self.tmp)
    shutil.rmtree(os.path.join(data_dir, 'test_a', 'gt'))
    datasets.paired_files('raindrop', data_dir, 'train')  # Not needed.
    with self.assertRaises(datasets.ManualDirError) as cm:
      datasets.paired_files('raindrop', data_dir, 'test')
    msg = str(cm.exception)
    self.assertNotIn('\n', msg)
    self.assertIn(os.path.join(data_dir, 'test_a', 'gt'), msg)
    self.assertIn('python -m restorect_jax.datasets.prepare '
                  '--dataset=raindrop --show_tree', msg)

  def test_data_dir_one_level_off_gets_a_hint(self):
    data_dir = fx.make_public_layout('lol_v2_real', self.tmp)
    inner = os.path.join(data_dir, 'Real_captured')
    with self.assertRaisesRegex(
        datasets.ManualDirError,
        "is the 'Real_captured' folder inside the tree: pass "
        f'{re.escape(data_dir)} '):
      datasets.folder_source('lol_v2_real', inner, 'train')
    with self.assertRaisesRegex(datasets.ManualDirError,
                                f'Found it under {re.escape(data_dir)}'):
      datasets.folder_source('lol_v2_real', self.tmp, 'train')

  def test_show_tree_prints_a_layout_only_tree(self):
    self.assertEqual(datasets.layout('lol_v2_real').tree,
                     datasets.builder('lol_v2_real').expected_tree())
    out = subprocess.run(
        [sys.executable, '-m', 'restorect_jax.datasets.prepare',
         '--dataset=deblur', '--show_tree'], capture_output=True, text=True,
        timeout=120, cwd=testutil.REPO, check=False)
    self.assertEqual(out.returncode, 0, out.stderr[-3000:])
    self.assertEqual(out.stdout.strip(), datasets.layout('deblur').tree)
    self.assertIn('test/GoPro/input', out.stdout)

  def test_unmatched_files_are_named(self):
    data_dir = fx.make_public_layout('sr', self.tmp)
    fx.save(os.path.join(data_dir, 'DIV2K_valid_HR', '0803.png'),
            fx.random_image('extra'))
    with self.assertRaisesRegex(ValueError, r'Unmatched.*0803\.png'):
      datasets.paired_files('sr', data_dir, 'test')


class PairDirsTest(_TmpTest):

  def test_rules_and_kinds(self):
    data_dir = fx.make_public_layout('raindrop', self.tmp)
    lq, gt = (os.path.join(data_dir, 'train', d) for d in ('data', 'gt'))
    with self.assertRaisesRegex(ValueError, 'Unmatched'):
      datasets.pair_dirs(lq, gt)  # By stem, 0_rain never meets 0_clean.
    src = datasets.pair_dirs(lq, gt, pairing='underscore_prefix')
    self.assertEqual(
        [(os.path.basename(a), os.path.basename(b))
         for a, b in zip(src.lq_paths, src.gt_paths)],
        [(f'{i}_rain.png', f'{i}_clean.png') for i in range(3)])
    np.testing.assert_array_equal(src[1]['gt'], 255 - src[1]['lq'])
    clean = datasets.pair_dirs(gt, gt)
    self.assertEqual(clean.kind, 'clean')
    rec = clean[0]
    self.assertIs(rec['lq'], rec['gt'])
    unpaired = datasets.pair_dirs(lq)
    self.assertEqual((unpaired.kind, unpaired.has_gt), ('unpaired', False))
    self.assertNotIn('gt', unpaired[0])
    with self.assertRaisesRegex(ValueError, "Unknown pairing rule 'nope'"):
      datasets.pair_dirs(lq, gt, pairing='nope')


if __name__ == '__main__':
  absltest.main()
