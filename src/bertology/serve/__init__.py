"""`bertology serve`: the lecture's experiments as an interactive explorer in the browser.

- `explorer.py`: what each view computes. It calls the library (senses.run, mlm.run,
  align.usable_words / contextual_vectors, langvec.language_means / translate) on models the server keeps in
  memory, checks the input limits, and runs every model call behind one lock with a bounded queue.
- `app.py`: the FastAPI application (JSON API + the static page in `static/`, no build step).
"""

from .app import create_app, host_warning
from .explorer import Explorer, Limits, ServeConfig

__all__ = ["Explorer", "Limits", "ServeConfig", "create_app", "host_warning"]
