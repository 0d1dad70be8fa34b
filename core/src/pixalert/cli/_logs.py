"""pixalert's log warnings during one command: held, and shown once it ends."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["HeldWarnings", "held_warnings"]


class HeldWarnings(logging.Handler):
    """Keeps the records of the ``pixalert`` loggers until :meth:`release`."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``."""
        self.records.append(record)

    def drop_repeating(self, exc: BaseException) -> None:
        """Forget the records whose message carries the text of ``exc``."""
        from .._redact import redact

        text = redact(str(exc)).strip()
        if not text:
            return
        kept = []
        for record in self.records:
            try:
                message = record.getMessage()
            except Exception:  # a broken record is not ours to judge
                message = ""
            if text not in message:
                kept.append(record)
        self.records = kept


@contextlib.contextmanager
def held_warnings() -> Iterator[HeldWarnings]:
    """Hold the ``pixalert`` loggers' warnings, then let the kept ones through.

    Holds nothing when logging is configured (``-v``, or a host that set up
    handlers): the records flow as they come.
    """
    holder = HeldWarnings()
    logger = logging.getLogger("pixalert")
    if logging.getLogger().handlers or logger.handlers:
        yield holder
        return
    logger.addHandler(holder)
    previous, logger.propagate = logger.propagate, False
    try:
        yield holder
    finally:
        logger.removeHandler(holder)
        logger.propagate = previous
        for record in holder.records:
            logging.getLogger(record.name).handle(record)
