"""Keep secrets out of what Apprise, requests and urllib3 log.

Apprise logs through the ``apprise`` logger: at DEBUG the request URL it is
about to call (``JSON POST URL: http://host/path/token``), at ERROR a URL it
cannot parse, and its own privacy rendering of URLs leaves path tokens and
custom headers visible. urllib3 (under requests, which most Apprise services
use) logs request paths. :class:`SecretFilter` masks every secret pixalert
knows (:func:`pixalert.channels.redact`) in each record of those loggers, and
:func:`install` attaches it to each of them and to their handlers.

A filter on a logger sees only the records logged through that very logger,
not its children's, so :func:`install` attaches it to every existing logger
under the prefixes (``apprise``, ``apprise.xmpp``, ``urllib3.connectionpool``,
...). The channel calls it when it is built and before each send, so loggers
created later (a plugin loaded on first use) are covered as they appear.
Because the logger's filter rewrites the record before any handler runs,
Apprise's own result log capture (``AppriseResult.logs()``) is masked too.
"""

from __future__ import annotations

import logging
import threading
import traceback

from pixalert.channels import redact

__all__ = ["LOGGERS", "SecretFilter", "install"]

#: The loggers (and their children) whose records are masked.
LOGGERS = ("apprise", "urllib3", "requests", "requests_oauthlib", "oauthlib")

_lock = threading.Lock()


class SecretFilter(logging.Filter):
    """Masks registered secrets in a record's message (and its traceback text).

    It never drops a record: it rewrites ``msg`` to the masked message and
    clears ``args``, and renders ``exc_info`` into a masked ``exc_text``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ``record`` in place; always keep it."""
        if getattr(record, "_pixalert_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken record is not ours to fix
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        record._pixalert_masked = True
        return True


#: The one filter instance, so attaching it twice is a no-op.
FILTER = SecretFilter()


def _covered(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in LOGGERS)


def install() -> None:
    """Attach :data:`FILTER` to every existing logger under :data:`LOGGERS` and their handlers.

    Safe to call often: a logger or handler that has the filter keeps one copy.
    """
    with _lock:
        names = [n for n in list(logging.root.manager.loggerDict) if _covered(n)]
        for name in {*LOGGERS, *names}:
            logger = logging.getLogger(name)
            if FILTER not in logger.filters:
                logger.addFilter(FILTER)
            for handler in logger.handlers:
                if FILTER not in handler.filters:
                    handler.addFilter(FILTER)
