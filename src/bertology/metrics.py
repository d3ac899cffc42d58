"""Metrics, implemented to their official definitions where one exists (no downloads at run time)."""

from __future__ import annotations

import numpy as np

# ==== word senses: how well do the senses separate ============================================================

# ==== classification ==========================================================================================

# ==== extractive QA: SQuAD v1.1 (English) and CMRC 2018 / DRCD (Chinese) ======================================

# ==== retrieval: MRR, P@k, CSLS ===============================================================================
