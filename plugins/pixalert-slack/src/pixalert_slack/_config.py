"""The Slack channel's settings (light: no HTTP imports here)."""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs
from pixalert.channels import Secret

__all__ = ["DEFAULT_API_URL", "SlackConfig", "normalize_mention"]

DEFAULT_API_URL = "https://slack.com/api"

Mode = Literal["webhook", "api"]

_MODES = ("auto", "webhook", "api")
_SPECIAL_MENTIONS = {"here": "<!here>", "channel": "<!channel>", "everyone": "<!everyone>"}
# <!here>, <!channel>, <!everyone>, <@U123>, <@W123>, <!subteam^S123>, <#C123>
_MENTION = re.compile(r"<(?:!(?:here|channel|everyone)|@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+)>")


def normalize_mention(value: str | None) -> str | None:
    """Slack's mention syntax for ``value``: ``"here"`` and ``"@here"`` become ``"<!here>"``.

    Also accepted: ``"<!channel>"``, ``"<!everyone>"``, a user (``"<@U123ABC>"`` or
    ``"U123ABC"``) and a user group (``"<!subteam^S123ABC>"`` or ``"S123ABC"``).
    Several mentions may be given separated by spaces or commas. Raises
    ``ValueError`` for anything else.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"mention_on_critical: expected a string, got {type(value).__name__}")
    parts = [p for p in re.split(r"[\s,]+", value.strip()) if p]
    if not parts:
        return None
    out = []
    for part in parts:
        bare = part.lstrip("@!").lower()
        if bare in _SPECIAL_MENTIONS:
            out.append(_SPECIAL_MENTIONS[bare])
        elif re.fullmatch(r"[UW][A-Z0-9]{2,}", part):
            out.append(f"<@{part}>")
        elif re.fullmatch(r"S[A-Z0-9]{2,}", part):
            out.append(f"<!subteam^{part}>")
        elif _MENTION.fullmatch(part):
            out.append(part)
        else:
            raise ValueError(
                f"mention_on_critical: {part!r} is not a Slack mention; expected "
                "'here', 'channel', 'everyone', a user ID ('U123ABC' or '<@U123ABC>') "
                "or a user group ID ('S123ABC' or '<!subteam^S123ABC>')"
            )
    return " ".join(out)


def _optional_secret(value: Any) -> Secret | None:
    """An empty secret (``SLACK_TOKEN=""``) counts as not set."""
    if value is None:
        return None
    if isinstance(value, str):
        value = Secret(value)
    if isinstance(value, Secret):
        return value if value.get().strip() else None
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value.strip() or None


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name}: expected an integer >= 1, got {value!r}")


def _check_mode(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in _MODES:
        raise ValueError(f"mode: expected one of {', '.join(_MODES)}, got {value!r}")


def _is_http_url(value: str) -> bool:
    return bool(re.match(r"https?://[^/\s]+", value, flags=re.IGNORECASE))


@attrs.define
class SlackConfig:
    """Settings of a Slack channel (``[channels.slack]``).

    Two ways to post, exactly one of which is used:

    - ``webhook_url`` (``SLACK_WEBHOOK_URL``): an incoming webhook; the
      webhook decides the Slack channel.
    - ``token`` (``SLACK_TOKEN``) and ``channel`` (``SLACK_CHANNEL``): the Web
      API's ``chat.postMessage`` with a bot token; a resolved alert then
      updates the message that announced it.

    With ``mode = "auto"`` (the default) the bot token is used when both token
    and channel are set, else the webhook. ``mode = "webhook"`` or ``"api"``
    forces one. ``rate`` messages per second (``burst`` at once) are sent to
    one Slack channel; more wait their turn instead of provoking HTTP 429.

    ``signing_secret`` (``SLACK_SIGNING_SECRET``) is the Slack app's signing
    secret. With it, and ``[actions] public_url`` set in the pixalert config,
    firing alerts carry Acknowledge and Resolve buttons; Slack posts the
    clicks to ``<public_url>/<channel name>/actions`` (the app's
    Interactivity Request URL), where each request's signature is checked.
    """

    webhook_url: Secret | None = attrs.field(default=None, converter=_optional_secret)
    token: Secret | None = attrs.field(default=None, converter=_optional_secret)
    signing_secret: Secret | None = attrs.field(default=None, converter=_optional_secret)
    channel: str | None = attrs.field(default=None, converter=_optional_str)
    api_url: str = DEFAULT_API_URL
    mention_on_critical: str | None = attrs.field(default=None, converter=normalize_mention)
    mode: str = attrs.field(default="auto", validator=_check_mode)
    timeout: float = attrs.field(default=10.0, validator=_positive)
    rate: float = attrs.field(default=1.0, validator=_positive)
    burst: int = attrs.field(default=3, validator=_at_least_one)

    def __attrs_post_init__(self) -> None:
        # Cross-field rules; messages never include the secret values.
        if self.webhook_url is not None and not _is_http_url(self.webhook_url.get()):
            raise ValueError(
                "webhook_url: expected an https:// URL "
                "(https://hooks.slack.com/services/...); the value is not shown"
            )
        if not _is_http_url(self.api_url):
            raise ValueError(f"api_url: expected an http(s) URL, got {self.api_url!r}")
        self.api_url = self.api_url.rstrip("/")
        has_api = self.token is not None and self.channel is not None
        if self.mode == "webhook" and self.webhook_url is None:
            raise ValueError("mode 'webhook' needs webhook_url (SLACK_WEBHOOK_URL)")
        if self.mode == "api" and not has_api:
            raise ValueError(self._api_missing() or "mode 'api' needs token and channel")
        if self.mode == "auto":
            if self.token is not None and self.channel is None and self.webhook_url is None:
                raise ValueError(
                    "token is set but channel is not: chat.postMessage needs channel "
                    "(SLACK_CHANNEL), e.g. '#alerts' or a channel ID"
                )
            if not has_api and self.webhook_url is None:
                raise ValueError(
                    "nothing to post with: set webhook_url (SLACK_WEBHOOK_URL) for an "
                    "incoming webhook, or token (SLACK_TOKEN) and channel (SLACK_CHANNEL) "
                    "for chat.postMessage"
                )

    def _api_missing(self) -> str | None:
        missing = [
            f"{field} ({env})"
            for field, env, value in (
                ("token", "SLACK_TOKEN", self.token),
                ("channel", "SLACK_CHANNEL", self.channel),
            )
            if value is None
        ]
        return f"mode 'api' needs {' and '.join(missing)}" if missing else None

    @property
    def effective_mode(self) -> Mode:
        """``"api"`` (bot token and ``chat.postMessage``) or ``"webhook"``."""
        if self.mode == "webhook":
            return "webhook"
        if self.mode == "api" or (self.token is not None and self.channel is not None):
            return "api"
        return "webhook"
