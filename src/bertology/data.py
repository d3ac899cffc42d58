"""Data loaders: every file format the experiments read, with validation that names the file and line at
fault (`UserError`, exit code 2). Data sets are found by name with `storage.find_dataset`."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .storage import open_text, read_lines

# ==== sentence files (word senses) ============================================================================

# ==== pretraining corpora =====================================================================================

# ==== sequence classification (DNA, protein, music) ===========================================================

# ==== extractive QA (SQuAD format) ============================================================================

# ==== bilingual dictionaries ==================================================================================
