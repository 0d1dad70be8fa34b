"""Backend URLs: options in the query string, passwords kept out of sight."""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._redact import register_secret

__all__ = ["mask_secret_url", "mask_url", "positive_option", "split_url_options"]


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print and log)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def mask_secret_url(url: str) -> str:
    """``url`` reduced to its scheme, host and port, with the rest masked
    (``https://hooks.slack.com/…``): for URLs whose path or query is the secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    rest = "/\u2026" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{netloc}{rest}"


def split_url_options(url: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Take pixalert's own ``names`` out of ``url``'s query string.

    Returns the URL for the client library (every other parameter kept) and
    the options found. The URL's password is registered as a secret, so it is
    masked wherever pixalert redacts.
    """
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    wanted = set(names)
    own: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in wanted:
            own[name] = value
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), own


def positive_option(name: str, text: str, url: str, *, integer: bool = False) -> float:
    """The number ``text`` of option ``name``, which must be > 0.

    Raises ``ValueError`` naming the option and the (masked) URL.
    """
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        kind = "a whole number" if integer else "a number of seconds"
        raise ValueError(f"{mask_url(url)}: {name} expected {kind} > 0, got {text!r}") from None
    return value
