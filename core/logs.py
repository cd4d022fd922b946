"""Plain log lines for Cog: our messages through `logging`, libraries' progress bars off.

Cog keeps `\\r` verbatim, so tqdm bars from diffusers and transformers turn into noise in a
prediction's logs; our own progress is printed as lines instead (trainer/progress.py).
"""

from __future__ import annotations

import logging


def configure() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
