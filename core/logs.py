"""Plain log lines for Cog: our messages through `logging`, libraries' progress bars off.

Cog keeps `\\r` verbatim, so tqdm bars from diffusers and transformers turn into noise in a
prediction's logs; our own progress is printed as lines instead (trainer/progress.py).
"""

from __future__ import annotations

import logging
import sys
from collections import deque


def configure() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


class LogTail:
    """The last lines printed or logged while a block runs, to explain a failure.

    coglet returns a failed prediction with empty logs, so the error itself has to carry what
    the user needs: `with LogTail() as tail: ...` then `tail.text()`.
    """

    def __init__(self, lines: int = 20):
        self.lines: deque[str] = deque(maxlen=lines)
        self._partial = ""

    def add(self, text: str) -> None:
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines.extend(line.rstrip() for line in complete if line.strip())

    def text(self) -> str:
        return "\n".join([*self.lines, *([self._partial] if self._partial.strip() else [])])

    def __enter__(self) -> LogTail:
        self._stdout, sys.stdout = sys.stdout, _Tee(sys.stdout, self.add)
        self._handler = _TailHandler(self)
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc_info) -> None:
        sys.stdout = self._stdout
        logging.getLogger().removeHandler(self._handler)


class _Tee:
    def __init__(self, stream, sink):
        self._stream, self._sink = stream, sink

    def write(self, text: str) -> int:
        self._sink(text)
        return self._stream.write(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding…
        return getattr(self._stream, name)


class _TailHandler(logging.Handler):
    def __init__(self, tail: LogTail):
        super().__init__(logging.INFO)
        self.tail = tail

    def emit(self, record: logging.LogRecord) -> None:
        self.tail.add(record.getMessage() + "\n")
