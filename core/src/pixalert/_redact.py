"""Keep secrets out of text: error messages, log records, history rows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

__all__ = [
    "SecretFilter",
    "attach_log_filter",
    "mask_loggers",
    "redact",
    "register_secret",
    "secret_values",
]

MASK = "**********"
_MIN_LENGTH = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret: :func:`redact` and :class:`SecretFilter` mask it.

    Channels register their tokens, passwords and secret URLs when built; a
    Slack webhook URL is registered whole and by its path.
    """
    value = value.strip()
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        _secrets.add(value)
        if "://" in value:
            # A URL's path and query are where its secret lives.
            rest = value.split("://", 1)[1]
            _, sep, path = rest.partition("/")
            if sep and len(path) >= _MIN_LENGTH:
                _secrets.add("/" + path)
    attach_log_filter()


def secret_values() -> frozenset[str]:
    """Every registered secret (for tests that search output for leaks)."""
    with _lock:
        return frozenset(_secrets)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and each of ``extra``) masked."""
    with _lock:
        values = _secrets.union(v for v in extra if len(v) >= _MIN_LENGTH)
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that masks every registered secret in the records it sees.

    pixalert puts one on its own loggers and on those of the libraries it
    sends with (see below); attach one to your own handlers to mask secrets
    in whatever else reaches them::

        handler.addFilter(pixalert.SecretFilter())

    or, with :func:`logging.config.dictConfig`, declare
    ``"filters": {"secrets": {"()": "pixalert.SecretFilter"}}`` and list
    ``"secrets"`` in a handler's ``filters``. It masks the message (after
    its arguments are merged in), the exception text and the stack text, in
    place, and never drops a record. It changes neither the log record
    factory nor any logger it is not attached to.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the registered secrets in ``record``; always keep it."""
        if _secrets:
            _clean(record)
        return True


_formatter = logging.Formatter()


def _clean(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        return  # a broken record is not ours to fix
    clean = redact(message)
    if clean != message:
        record.msg = clean
        record.args = None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        # Formatted as a handler's Formatter would (its text is cached on the
        # record), and kept only when something in it was masked.
        text = _formatter.formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


#: The loggers pixalert and the libraries it sends with write to; each family's
#: children are filtered too (a logger's filters do not see its children's records).
LOGGER_FAMILIES = ("pixalert", "httpx", "httpcore", "aiohttp", "aiosmtplib")
# Families plugins added with mask_loggers() (a plugin's own HTTP library...).
_extra_families: list[str] = []
# The children those libraries create, made here first so that they carry the
# filter even when the library is imported later.
_LIBRARY_LOGGERS = (
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
_FILTER = SecretFilter()


def attach_log_filter() -> None:
    """Put pixalert's :class:`SecretFilter` on every logger of :data:`LOGGER_FAMILIES`.

    The families' top loggers, the libraries' known children and every other
    child that exists by now get it (again harmless: a logger keeps one
    copy). Called when a secret is registered and when an HTTP client is
    made, so that the loggers of plugins and libraries imported by then are
    covered. No other logger, handler or the record factory is touched.
    """
    families = (*LOGGER_FAMILIES, *_extra_families)
    for name in (*families, *_LIBRARY_LOGGERS):
        logging.getLogger(name).addFilter(_FILTER)
    prefixes = tuple(family + "." for family in families)
    # The logging module's registry of loggers made so far (what
    # Logger.getChildren reads on Python 3.12+); placeholders are skipped.
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(prefixes) and isinstance(logger, logging.Logger):
            logger.addFilter(_FILTER)


def mask_loggers(*names: str) -> None:
    """Mask registered secrets in what the loggers ``names`` (and their children) log.

    For a channel plugin whose libraries log request URLs or headers (Apprise
    logs through ``apprise``, requests through ``urllib3``): call it when the
    channel is built, and again before a send if the library makes new child
    loggers on the fly. It puts the same :class:`SecretFilter` pixalert uses
    on its own loggers on those, now and whenever pixalert attaches it again.
    """
    for name in names:
        if name and name not in LOGGER_FAMILIES and name not in _extra_families:
            _extra_families.append(name)
    attach_log_filter()
