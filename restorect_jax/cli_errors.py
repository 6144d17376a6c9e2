"""One clear line per error in the command-line tools.

``main``, ``restore``, ``evaluate`` and ``convert`` report a user-facing
error (a bad flag or config key, an unreadable or hostile weight file, a
damaged checkpoint, a missing input) as one line on stderr::

  error: /data/w.pth: the file is empty (expected a PyTorch state dict)

followed, for errors that list several problems (a state dict that does not
match the model), by at most :data:`MAX_DETAIL_LINES` indented lines. No
traceback is printed unless ``--verbosity`` is 1 or more. Exit status: 2
for a wrong command line (flags, config keys), 1 for any other error.

Errors of other types (bugs) keep their traceback.
"""

from __future__ import annotations

import functools
import pickle
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from absl import app
from absl import flags

# The error types a user can cause through arguments or files; each of the
# package's own errors derives from one of them (ConversionError,
# CheckpointIntegrityError, ImageReadError: ValueError; ManualDirError:
# FileNotFoundError; NonFiniteOutputError, NonFiniteLossError:
# FloatingPointError).
USER_ERRORS = (ValueError, OSError, EOFError, ArithmeticError, MemoryError,
               pickle.UnpicklingError, app.UsageError)
USAGE_STATUS = 2
ERROR_STATUS = 1
MAX_DETAIL_LINES = 12


def _lines(e: BaseException) -> list[str]:
  """The non-empty lines of an error's message (its type if it has none)."""
  # ml_collections wraps a KeyError in an AttributeError: show the innermost
  # message, not the quoted repr of the wrapped error.
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = e.args[0] if (len(e.args) == 1 and isinstance(e.args[0], str)) else (
      str(e))
  lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
  return lines or [type(e).__name__]


def message(e: BaseException) -> list[str]:
  """``[headline, detail...]`` for an error (detail capped)."""
  lines = _lines(e)
  head = lines[0]
  if isinstance(e, MemoryError):
    head = 'out of memory' + ('' if head == 'MemoryError' else f' ({head})')
  detail = lines[1:]
  if len(detail) > MAX_DETAIL_LINES:
    more = len(detail) - MAX_DETAIL_LINES
    detail = detail[:MAX_DETAIL_LINES] + [
        f'... {more} more lines (--verbosity=1 shows everything)']
  return [head] + ['  ' + ln.strip() for ln in detail]


def fail(lines: Sequence[str], status: int = ERROR_STATUS) -> NoReturn:
  """Prints ``error: <first line>`` (then the rest) and exits."""
  sys.stdout.flush()
  print('error: ' + '\n'.join(lines), file=sys.stderr)
  sys.exit(status)


def guard(main: Callable[..., Any], *,
          verbose: Callable[[], bool]) -> Callable[..., Any]:
  """Wraps ``main`` so that :data:`USER_ERRORS` end in :func:`fail`.

  Args:
    main: the command's main function.
    verbose: whether to re-raise instead (keeping the traceback); asked
      when an error happens.
  """

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except USER_ERRORS as e:
      if verbose():
        raise
      fail(message(e), USAGE_STATUS if isinstance(e, app.UsageError)
           else ERROR_STATUS)

  return wrapped


def _absl_verbose() -> bool:
  return flags.FLAGS.is_parsed() and flags.FLAGS.verbosity >= 1


def _verbosity_in(argv: Sequence[str]) -> int:
  """``--verbosity`` / ``-v`` from raw arguments (flags are not parsed)."""
  level = 0
  for i, arg in enumerate(argv):
    m = re.fullmatch(r'--?(?:verbosity|v)(?:=(-?\d+))?', arg)
    if not m:
      continue
    value = m[1] if m[1] is not None else (
        argv[i + 1] if i + 1 < len(argv) else '0')
    try:
      level = int(value)
    except ValueError:
      pass
  return level


def _config_key_error(lines: list[str], argv: Sequence[str]) -> str | None:
  """A config override naming a key that does not exist, as one line."""
  m = re.fullmatch(r"""['"]?([\w.]+)['"]?""", lines[0])
  if not m:
    return None
  key = m[1]
  hint = ' '.join(lines[1:])
  for arg in argv:
    name = arg.split('=', 1)[0]
    if name.startswith('--config.') and key in name.split('.')[1:]:
      return (f'{arg}: the config has no key {name[len("--config."):]!r}'
              + (f'. {hint}' if hint else ''))
  return None


def flag_error_line(e: BaseException, argv: Sequence[str]) -> str:
  """One line for an error raised while parsing flags (and config files)."""
  lines = _lines(e)
  if isinstance(e, (AttributeError, KeyError)):
    line = _config_key_error(lines, argv)
    if line:
      return line
  head = lines[0]
  if len(lines) > 1:
    # A config file that raised: absl embeds its traceback; the last line
    # is the error itself.
    head = re.sub(r':?\s*Error whilst parsing config file:\s*$', '', head)
    last = lines[-1].strip()
    if last != head:
      head = f'{head}: {last}'
  return head


def parse_flags(argv: list[str]) -> list[str]:
  """``flags.FLAGS(argv)``; a bad flag or config key ends in one line."""
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:
    # absl's --help / --helpshort / --helpfull print the help and exit 1;
    # asking for help is not an error.
    if e.code == 1 and any(re.fullmatch(r'--?help(short|full|xml)?', a)
                           for a in argv[1:]):
      raise SystemExit(0) from None
    raise
  except Exception as e:  # pylint: disable=broad-except
    # absl raises flags.Error; ml_collections' config flags raise
    # AttributeError / KeyError / OSError / ValueError as well.
    if _verbosity_in(argv) >= 1:
      raise
    fail([flag_error_line(e, argv) + ' (--helpshort lists the flags)'],
         USAGE_STATUS)


def run(main: Callable[[list[str]], Any]) -> None:
  """``app.run(main)`` with one-line errors (see the module doc)."""
  app.run(guard(main, verbose=_absl_verbose), flags_parser=parse_flags)
