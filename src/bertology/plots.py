"""Every figure the toolkit draws. Computation lives in the experiment modules; these functions only draw
result objects / plain arrays and save PNGs (atomically). Chinese renders with the Noto Sans CJK font that
the `mplfonts` package ships (no system font needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .storage import atomic_write_bytes  # noqa: E402

_FONT_READY = False


def use_cjk_font() -> str | None:
    """Register Noto Sans CJK (from mplfonts) and put it first in the sans-serif list. Returns its name."""
    global _FONT_READY
    from matplotlib import font_manager

    name = None
    try:
        import mplfonts

        font = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
        if font.exists():
            font_manager.fontManager.addfont(str(font))
            name = font_manager.FontProperties(fname=str(font)).get_name()
    except ImportError:
        pass
    if name and not _FONT_READY:
        plt.rcParams["font.sans-serif"] = [name, "DejaVu Sans"] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["axes.unicode_minus"] = False
        _FONT_READY = True
    return name


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def new_figure(width: float = 6.4, height: float = 4.0):
    use_cjk_font()
    return plt.subplots(figsize=(width, height))


# ==== word senses, CBOW =======================================================================================

# ==== pretraining =============================================================================================

# ==== cross-disciplinary transfer =============================================================================

# ==== question answering ======================================================================================

# ==== alignment and language vectors ==========================================================================
