"""The Apprise channel's settings, checked against Apprise itself when they are loaded.

Apprise is imported only when a config is built (never by ``pixalert --help``
or ``pixalert plugins``).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import attrs
from pixalert.channels import Secret, register_secret

__all__ = ["AppriseConfig", "load_services", "scheme_of", "url_secrets"]

# A scheme as Apprise spells them (discord, jsons, mailto, ntfy, tgram...).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
# Where secrets sit in Apprise URLs: between these characters.
_DELIMITERS = re.compile(r"[/?&=@:,;#+\s]+")
# Apprise's tag filter: "3:tag" picks a priority, "tag:2" adds Apprise retries.
_RETRY_SUFFIX = re.compile(r":\d+$")
_MIN_PART = 6
# What follows a comma inside one URL ("b@y.com", "chat2"), maybe then the next URL.
_CONTINUES = re.compile(r"^[^\s,]+(?:[\s,]+[A-Za-z][A-Za-z0-9+.-]{0,31}://.*)?$", re.S)
# Between two URLs in one string: commas or spaces, then the next scheme://.
_SEPARATOR = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]{0,31}://)")
# Host names and addresses (db-1.example.com, 127.0.0.1): readable, not tokens.
_HOSTLIKE = re.compile(r"[\d.]+|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Query parameters whose values are credentials whatever they look like.
_SECRET_KEY = re.compile(r"token|key|secret|pass|pwd|auth|sig|cred|session|cookie", re.I)
_SCHEMES: dict[str, dict[str, Any]] | None = None


def _apprise() -> Any:
    """Apprise, imported with its services loaded and pixalert's log masking attached."""
    import apprise

    from . import _logs

    _logs.install()
    if _SCHEMES is None:
        _load(apprise)
        _logs.install()  # the loggers the services' modules made
    return apprise


def _load(apprise: Any) -> None:
    """Load Apprise's services once (it does so on first use) and index their schemes.

    Some services' modules import what Python deprecates (PGPy imports
    ``imghdr``): those import-time DeprecationWarnings are Apprise's
    dependencies' business, so they are not raised into the application here.
    """
    global _SCHEMES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        schemas = apprise.Apprise().details()["schemas"]
    found: dict[str, dict[str, Any]] = {}
    for schema in schemas:
        for key in ("protocols", "secure_protocols"):
            for proto in schema.get(key) or ():
                found.setdefault(str(proto).lower(), schema)
    _SCHEMES = found


def known_schemes() -> dict[str, dict[str, Any]]:
    """Every scheme Apprise knows, to its service details (name, setup URL)."""
    _apprise()
    assert _SCHEMES is not None
    return _SCHEMES


def scheme_of(url: str) -> str | None:
    """The scheme of ``url`` (``"discord"``), lower-cased, or None if it has none."""
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else None


def _pieces(text: str) -> set[str]:
    rest = text.split("://", 1)[1] if "://" in text else text
    out = set()
    for piece in _DELIMITERS.split(rest):
        out.add(piece)
        out.add(unquote(piece))
    return {p for p in out if p}


def _tokenish(piece: str) -> bool:
    """Whether ``piece`` looks like a token rather than a word (``alerts``, ``insecure``)."""
    if len(piece) < _MIN_PART or _HOSTLIKE.fullmatch(piece):
        return False
    has_digit = any(c.isdigit() for c in piece)
    mixed = any(c.isupper() for c in piece) and any(c.islower() for c in piece)
    return has_digit or mixed or len(piece) >= 16


def url_secrets(url: str, hidden: Iterable[str] = ()) -> list[str]:
    """The pieces of an Apprise URL that may be secret on their own, for masking.

    Apprise URLs carry tokens in every position (``tgram://bot_token/chat``,
    ``discord://id/token``, ``json://user:pass@host/path?+X-Token=v``). Masked
    are: the whole URL and its part after the host; the password; each of
    ``hidden`` (what Apprise's privacy rendering hides); the values of headers
    (``+Name=``), GET parameters (``-name=``) and credential-like parameters;
    and every other piece that looks like a token (six characters or more
    with a digit or mixed case, or sixteen or more).
    Plain words (``alerts``, ``insecure``) and host names are left readable,
    unless Apprise's privacy rendering hides them.
    """
    text = url.strip()
    out = {text}
    rest = text.split("://", 1)[1] if "://" in text else text
    authority, sep, tail = rest.partition("/")
    authority = authority.split("?", 1)[0]
    if sep:
        out.add("/" + tail)
        out.add("/" + tail.split("?", 1)[0])
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        _, colon, password = userinfo.partition(":")
        if colon and password:
            out.update({password, unquote(password)})
    query = text.split("?", 1)[1] if "?" in text else ""
    for key, value in parse_qsl(query, keep_blank_values=False):
        # ntfy's auth=basic names a mode, not a credential: plain words are not secrets.
        credential = _SECRET_KEY.search(key) and not re.fullmatch(r"[a-z]{1,12}", value)
        if key[:1] in "+-" or credential:
            out.update({value, quote(value, safe="")})
    out.update(p for p in _pieces(text) if _tokenish(p))
    out.update(hidden)
    for item in list(out):
        out.add(unquote(item))
    return sorted((s for s in out if len(s) >= 4), key=len, reverse=True)


def register_url(url: str, hidden: Iterable[str] = ()) -> None:
    """Register ``url`` and its secret pieces (see :func:`url_secrets`) with pixalert's masking."""
    for piece in url_secrets(url, hidden):
        register_secret(piece)


def _join_split_urls(items: list[Any]) -> list[Any]:
    """Undo a comma split inside one URL: ``APPRISE_URLS="mailto://h?to=a@x,b@y"``.

    A list from an environment variable arrives split on every comma; a piece
    without a ``scheme://`` belongs to the URL before it (Apprise URLs use
    commas between targets).
    """
    out: list[Any] = []
    for item in items:
        text = item.get() if isinstance(item, Secret) else item
        if out and isinstance(text, str) and scheme_of(text) is None and _CONTINUES.match(text):
            previous = out[-1]
            joined = f"{previous.get() if isinstance(previous, Secret) else previous},{text}"
            register_secret(joined)
            out[-1] = Secret(joined)
        else:
            out.append(item)
    return out


def _to_urls(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, Secret)):
        text = value.get() if isinstance(value, Secret) else value
        register_secret(text)
        # One string may hold several URLs, separated by commas or spaces.
        value = [p.strip(" ,") for p in _SEPARATOR.split(text) if p.strip(" ,")]
    if not isinstance(value, (list, tuple)):
        return value  # reported by __attrs_post_init__
    items = [Secret(v) if isinstance(v, str) else v for v in value]
    for item in items:
        if isinstance(item, Secret):
            register_secret(item.get())
    out: list[Any] = []
    for item in _join_split_urls(items):
        # "json://a json://b" (an environment variable, or one list item) is two URLs.
        if isinstance(item, Secret) and _SEPARATOR.search(item.get().strip()):
            for part in _SEPARATOR.split(item.get().strip()):
                if part.strip(" ,"):
                    register_secret(part.strip(" ,"))
                    out.append(Secret(part.strip(" ,")))
        else:
            out.append(item)
    return out


def _to_tags(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return value


def _check_url(field: str, value: Any) -> None:
    if not isinstance(value, Secret):
        raise ValueError(f"{field}: expected an Apprise URL string, got {type(value).__name__}")
    text = value.get().strip()
    register_url(text)  # before Apprise sees it: it logs URLs it cannot read
    scheme = scheme_of(text)
    if scheme is None:
        # The URL is a secret: say what is wrong without repeating it.
        raise ValueError(
            f"{field}: expected an Apprise URL such as 'discord://webhook_id/webhook_token' "
            "(no scheme:// found; the value is not shown)"
        )
    schemes = known_schemes()
    if scheme not in schemes:
        raise ValueError(
            f"{field}: expected an Apprise URL: '{scheme}://' is not a scheme Apprise "
            "knows (apprise --details lists them)"
        )
    service = _apprise().Apprise.instantiate(text, suppress_exceptions=True)
    if service is None:
        details = schemes[scheme]
        name = details.get("service_name") or scheme
        setup = details.get("setup_url")
        raise ValueError(
            f"{field}: expected a valid {name} URL; Apprise could not read this "
            f"'{scheme}://' URL (the value is not shown)" + (f"; see {setup}" if setup else "")
        )
    register_service(service, text)


def register_service(service: Any, url: str | None = None) -> None:
    """Register the secret pieces of ``service``'s URL, as given (``url``) and as Apprise
    writes it in full, told apart by what its privacy rendering hides."""
    full = shown = ""
    with contextlib.suppress(Exception):
        full, shown = service.url(privacy=False), service.url(privacy=True)
    # Both renderings carry the same parameters: what differs is what Apprise masks.
    hidden = {p for p in _pieces(full) - _pieces(shown) if len(p) >= 4} if shown else set()
    if url is not None:
        register_url(url, hidden)
    if full:
        register_url(full, hidden)


def _check_tags(tags: Any) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags: expected a list of tag strings")
    for i, tag in enumerate(tags):
        if not tag.strip():
            raise ValueError(f"tags[{i}]: expected a tag, got an empty string")
        if _RETRY_SUFFIX.search(tag.strip()):
            raise ValueError(
                f"tags[{i}]: expected a tag without Apprise's ':N' retry suffix, got {tag!r}; "
                "pixalert does the retrying (delivery.max_attempts, delivery.retry_schedule)"
            )


def _config_path(text: str) -> Path:
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise ValueError(
            "config: expected the path of a local Apprise config file (YAML or TEXT); "
            "remote config URLs would be fetched while pixalert loads its settings"
        )
    return Path(text).expanduser()


def load_services(
    urls: Iterable[Secret], config: str | None, tags: list[str], asset: Any = None
) -> list[Any]:
    """Apprise services: one per URL of ``urls``, then those of the ``config`` file
    that ``tags`` select (the untagged ones when no tags are set, as Apprise's CLI does).

    Raises ``ValueError`` naming the key when something cannot be used.
    """
    apprise = _apprise()
    services: list[Any] = []
    for i, url in enumerate(urls):
        service = apprise.Apprise.instantiate(url.get().strip(), asset=asset)
        if service is None:  # checked when the config was built; the file may differ now
            raise ValueError(f"urls[{i}]: expected an Apprise URL; Apprise could not read it")
        services.append(service)
    if config is not None:
        path = _config_path(config)
        try:
            path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(
                f"config: expected a readable Apprise config file, cannot read {path} ({reason})"
            ) from None
        loaded = apprise.AppriseConfig(asset=asset)
        loaded.add(str(path.resolve()))
        found = loaded.services()
        for service in found:
            register_service(service)
        if not found:
            raise ValueError(
                f"config: expected an Apprise config file (YAML or TEXT) with at least one "
                f"URL Apprise can use; found none in {path}"
            )
        holder = apprise.Apprise(asset=asset)
        holder.add(found)
        selected = list(holder.find(tag=_tag_filter(tags) if tags else None))
        if not selected:
            wanted = ", ".join(repr(t) for t in tags) or "none (untagged services only)"
            raise ValueError(
                f"tags: expected tags that select services of {path}; tags {wanted} select none "
                '(tags = ["all"] selects every service)'
            )
        services.extend(selected)
    return services


def _tag_filter(tags: Iterable[str]) -> list[Any]:
    """Apprise's filter for ``tags``: each entry is an alternative; ``"a, b"`` needs both."""
    out: list[Any] = []
    for tag in tags:
        parts = [p.strip() for p in tag.split(",") if p.strip()]
        out.append(tuple(parts) if len(parts) > 1 else parts[0])
    return out


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number of seconds > 0, got {value!r}")


@attrs.frozen
class AppriseConfig:
    """Settings of one Apprise channel (``[channels.<name>]`` with ``type = "apprise"``).

    - ``urls``: Apprise URLs (``APPRISE_URLS``, comma- or space-separated), each
      a secret as a whole; every URL is checked with Apprise when the settings
      load.
    - ``config``: the path of an Apprise config file (YAML or TEXT,
      ``APPRISE_CONFIG_PATH``); its services are selected by ``tags``.
    - ``tags``: Apprise tags selecting services of ``config``: any one of them
      (``["ops", "db"]``), ``"a, b"`` for both; none selects the untagged
      services, ``["all"]`` every service. URLs in ``urls`` are always used.
    - ``timeout``: seconds Apprise may spend on one service per attempt (its
      ``service_timeout``); pixalert's ``delivery.timeout`` bounds the whole send.
    """

    urls: list[Secret] = attrs.field(factory=list, converter=_to_urls)
    config: str | None = None
    tags: list[str] = attrs.field(factory=list, converter=_to_tags)
    timeout: float = attrs.field(default=10.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.urls, list):
            raise ValueError("urls: expected a list of Apprise URLs")
        if self.config is not None and not self.config.strip():
            object.__setattr__(self, "config", None)
        if not self.urls and self.config is None:
            raise ValueError(
                "urls: expected one or more Apprise URLs (urls, or APPRISE_URLS) or an "
                "Apprise config file (config, or APPRISE_CONFIG_PATH)"
            )
        for i, url in enumerate(self.urls):
            _check_url(f"urls[{i}]", url)
        _check_tags(self.tags)
        if self.tags and self.config is None:
            raise ValueError(
                "tags: expected `config` to be set too: tags select services of an Apprise "
                "config file (every URL in `urls` is always used)"
            )
        if self.config is not None:
            load_services([], self.config, self.tags)

    def services(self, asset: Any = None) -> list[Any]:
        """Fresh Apprise service objects for these settings (see :func:`load_services`)."""
        return load_services(self.urls, self.config, self.tags, asset)
