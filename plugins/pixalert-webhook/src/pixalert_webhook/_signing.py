"""Standard Webhooks v1.0.0 signatures: sign on the sending side, verify on the receiving side.

Only the standard library is used here, so receivers can import
:func:`pixalert_webhook.verify` cheaply.

The signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``; the
signature is HMAC-SHA256 with the base64-decoded secret (after its ``whsec_``
prefix), sent as ``webhook-signature: v1,<base64>``. Several space-separated
signatures may be sent (key rotation); one valid ``v1`` signature is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _random
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from pixalert.channels import Secret

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "decode_secret",
    "generate_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"
#: Seconds a timestamp may be off from the receiver's clock, either way.
DEFAULT_TOLERANCE = 300
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

#: A secret as :func:`verify` accepts it: ``"whsec_..."`` (or the bare base64
#: part), a :class:`pixalert.channels.Secret` holding one, or the raw key ``bytes``.
SecretLike: TypeAlias = "str | bytes | Secret"


class WebhookVerificationError(Exception):
    """A webhook failed verification: missing headers, stale timestamp or bad signature.

    The message says what was wrong and never contains the secret.
    """


def generate_secret(nbytes: int = 32) -> str:
    """A new random ``whsec_`` secret of ``nbytes`` (24 to 64) random bytes."""
    if not MIN_KEY_BYTES <= nbytes <= MAX_KEY_BYTES:
        raise ValueError(f"nbytes: expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES}, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def decode_secret(secret: SecretLike, *, strict: bool = False) -> bytes:
    """The HMAC key of ``secret``: the base64-decoded part after ``whsec_``.

    ``bytes`` are taken as the raw key. With ``strict`` the key must be 24 to
    64 bytes, as the standard asks of a sender. Raises ``ValueError`` (with no
    part of the secret in its message) when the secret is not valid base64.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.get() if isinstance(secret, Secret) else secret
        if not isinstance(text, str):
            raise ValueError(f"expected a 'whsec_' secret string, got {type(text).__name__}")
        text = text.strip()
        if text.startswith(SECRET_PREFIX):
            text = text[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "expected a Standard Webhooks secret: 'whsec_' followed by base64"
            ) from None
    if not key:
        raise ValueError("expected a non-empty Standard Webhooks secret")
    if strict and not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"expected a Standard Webhooks secret of {MIN_KEY_BYTES} to {MAX_KEY_BYTES} "
            f"random bytes, got {len(key)} bytes"
        )
    return key


class _Signer:
    """:func:`sign` for fixed keys, with each key's HMAC set up once (the sender's hot path)."""

    __slots__ = ("_macs",)

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]
        if not self._macs:
            raise ValueError("expected at least one secret")

    def __call__(self, msg_id: bytes, timestamp: bytes, body: bytes) -> bytes:
        """The ``webhook-signature`` value (ASCII bytes) of one attempt; ``timestamp`` is digits."""
        if not msg_id or b"." in msg_id:
            raise ValueError("webhook-id: expected a non-empty id without '.'")
        return b" ".join(b"v1," + s for s in self.digests(msg_id, timestamp, body))

    def digests(self, msg_id: bytes, timestamp: bytes, body: bytes) -> list[bytes]:
        """The base64 HMAC-SHA256 of ``msg_id.timestamp.body``, one per key."""
        signed = b"%s.%s.%s" % (msg_id, timestamp, body)
        out = []
        for mac in self._macs:
            one = mac.copy()
            one.update(signed)
            out.append(base64.b64encode(one.digest()))
        return out


def _keys(secret: SecretLike | Iterable[SecretLike]) -> list[bytes]:
    if isinstance(secret, (str, bytes, Secret)):
        return [decode_secret(secret)]
    keys = [decode_secret(s) for s in secret]
    if not keys:
        raise ValueError("expected at least one secret")
    return keys


def sign(
    secret: SecretLike | Iterable[SecretLike],
    msg_id: str,
    timestamp: int,
    body: bytes | str,
) -> str:
    """The ``webhook-signature`` header value for one attempt.

    ``secret`` may be several secrets (during a key rotation): the result then
    holds one ``v1,<base64>`` signature per secret, separated by spaces.
    """
    raw = body.encode() if isinstance(body, str) else body
    signer = _Signer(_keys(secret))
    return signer(msg_id.encode(), b"%d" % int(timestamp), raw).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    # Header names are case-insensitive; plain dicts may use any case.
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if key.lower() == name:
                value = item
                break
    if value is None or not str(value).strip():
        raise WebhookVerificationError(f"webhook verification failed: missing {name} header")
    return str(value).strip()


def verify(
    secret: SecretLike | Iterable[SecretLike],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its parsed JSON payload.

    ``secret`` is the endpoint's ``whsec_`` secret (or several, while rotating
    keys); ``headers`` the request headers (any mapping; names compared without
    case); ``body`` the raw request body, exactly as received. Raises
    :class:`WebhookVerificationError` when a ``webhook-*`` header is missing,
    the timestamp is more than ``tolerance`` seconds from ``now`` (default: the
    current time) either way, or no ``v1`` signature matches (compared in
    constant time).
    """
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if "." in msg_id:
        raise WebhookVerificationError("webhook verification failed: invalid webhook-id")
    if not stamp.isdigit():
        raise WebhookVerificationError(
            "webhook verification failed: webhook-timestamp is not integer seconds"
        )
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if current - timestamp > tolerance:
        raise WebhookVerificationError(
            f"webhook verification failed: timestamp too old (more than {tolerance:g} s ago)"
        )
    if timestamp - current > tolerance:
        raise WebhookVerificationError(
            f"webhook verification failed: timestamp too new (more than {tolerance:g} s ahead)"
        )
    try:
        keys = _keys(secret)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook verification failed: secret: {exc}") from None
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = _Signer(keys).digests(msg_id.encode(), b"%d" % timestamp, raw)
    matched = False
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue  # other schemes (v1a is ed25519) are not ours to check
        for candidate in expected:
            # Keep comparing after a match so timing says nothing about which matched.
            matched |= hmac.compare_digest(candidate, value.encode())
    if not matched:
        raise WebhookVerificationError("webhook verification failed: no matching signature")
    try:
        return json.loads(raw)
    except ValueError:
        raise WebhookVerificationError(
            "webhook verification failed: body is not valid JSON"
        ) from None
