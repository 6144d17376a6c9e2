"""SHA-256 of files and texts, shared by reports, split lists and manifests."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str]) -> str:
  """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def text_sha256(text: str) -> str:
  """Hex SHA-256 of a text's UTF-8 bytes (what a file holding it hashes to)."""
  return hashlib.sha256(text.encode('utf-8')).hexdigest()
