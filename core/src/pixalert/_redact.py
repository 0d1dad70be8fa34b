"""Keep secrets out of text: error messages, log records, history rows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["redact", "register_secret", "secret_values"]

MASK = "**********"
_MIN_LENGTH = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret: :func:`redact` and pixalert's log filter mask it.

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
    _install_log_filter()


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


def _clean(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        return  # a broken record is not ours to fix
    clean = redact(message)
    if clean != message:
        record.msg = clean
        record.args = None


# Loggers whose records are masked, with their children ("pixalert.slack",
# "httpx._client"...): the HTTP and SMTP libraries log request URLs.
_LOGGERS = ("httpx", "httpcore", "aiohttp", "aiosmtplib", "pixalert")
_installed = False


def _install_log_filter() -> None:
    """Mask secrets in every record of ``_LOGGERS`` and their children, as it is made.

    A logger's own filter does not see its children's records, so this wraps
    the log record factory (keeping whatever factory was installed before).
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets and record.name.partition(".")[0] in _LOGGERS:
            _clean(record)
        return record

    logging.setLogRecordFactory(factory)
