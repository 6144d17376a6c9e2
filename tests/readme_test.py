"""The README's set-up commands and .ci/run stay in step."""

import re

from absl.testing import absltest

import testutil


class ReadmeTest(absltest.TestCase):

  def test_first_two_commands_and_ci(self):
    readme = (testutil.REPO / 'README.md').read_text()
    blocks = re.findall(r'```bash\n(.*?)\n```', readme, flags=re.S)
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    self.assertIn('-m restorect_jax.demo', main_job)
    self.assertIn('pip install', main_job)
    self.assertIn('-m pytest', tests)
    ci = (testutil.REPO / '.ci' / 'run').read_text()
    self.assertIn(tests, ci.splitlines())


if __name__ == '__main__':
  absltest.main()
