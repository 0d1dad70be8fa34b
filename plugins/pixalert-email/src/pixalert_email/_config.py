"""The email channel's settings: an attrs class the core fills from TOML, JSON and environment."""

from __future__ import annotations

import os
import re
from typing import Any

import attrs
from pixalert.channels import Secret

__all__ = ["DEFAULT_PORTS", "SECURITY_MODES", "EmailConfig", "check_address"]

#: ``security`` values and what each does on the wire.
SECURITY_MODES = ("starttls", "tls", "none")

#: The port used when ``smtp_port`` is not set, by ``security``.
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}

# A conservative addr-spec: an ASCII dot-atom local part and a host name.
# Anything a header or an SMTP command could be smuggled through (spaces,
# control characters, quotes, brackets, commas) is refused outright.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*|\[?[0-9A-Fa-f:.]+\]?")


def check_address(value: str, where: str) -> str:
    """Return ``value`` stripped if it is a plain ``name@domain`` address, else raise ValueError.

    Control characters (CR, LF, NUL...), spaces, commas and display names are
    refused, so an address can never add a header or a recipient.
    """
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an email address, got {type(value).__name__}")
    text = value.strip()
    if len(text) > 254 or not _ADDRESS.fullmatch(text):
        raise ValueError(
            f"{where}: expected an email address like name@example.com (ASCII, without "
            f"spaces, control characters or display name), got {value!r}"
        )
    return text


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: expected a whole number >= 1, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}: expected a number >= 0, got {value!r}")


@attrs.define
class EmailConfig:
    """Settings of one email channel (``[channels.email]``).

    - ``recipients``: addresses every alert goes to (required; ``EMAIL_RECIPIENTS``,
      comma-separated, or the flat JSON key ``default_recipients``).
    - ``smtp_server`` / ``smtp_port``: the submission server (``SMTP_SERVER``,
      ``SMTP_PORT``). The server defaults to ``smtp.gmail.com``;
      the port defaults by ``security``: 587 starttls, 465 tls, 25 none.
    - ``security``: ``"starttls"`` (upgrade required, never skipped), ``"tls"``
      (implicit TLS) or ``"none"`` (clear text, for a trusted local relay; no
      AUTH). Unset, it is ``"tls"`` on port 465 and ``"starttls"`` otherwise.
    - ``username`` / ``password``: AUTH credentials (``EMAIL_USER``,
      ``EMAIL_PASSWORD``); AUTH happens only when a password is set, and only
      over TLS.
    - ``sender``: the From address (``EMAIL_SENDER``); defaults to ``username``.
    - ``verify_certs``: verify the server's certificate and host name (default
      true); ``ca_file``: a PEM bundle to trust instead of the system's.
    - ``timeout``: seconds for connecting and for each SMTP command.
    - ``idle_close``: seconds an unused connection stays open (0: close after
      each alert).
    - ``max_sessions``: how many SMTP sessions may be open at once (default 2).
      A second one opens only while every open one is busy; 1 sends one alert
      at a time over a single session.
    - ``local_hostname``: the name sent in EHLO (default: this machine's FQDN).
    """

    recipients: list[str] = attrs.field(factory=list)
    smtp_server: str = "smtp.gmail.com"
    smtp_port: int | None = None
    security: str | None = None
    username: str | None = None
    password: Secret | None = None
    sender: str | None = None
    verify_certs: bool = True
    ca_file: str | None = None
    timeout: float = attrs.field(default=10.0, validator=_positive)
    idle_close: float = attrs.field(default=30.0, validator=_non_negative)
    max_sessions: int = attrs.field(default=2, validator=_at_least_one)
    local_hostname: str | None = None

    def __attrs_post_init__(self) -> None:
        # The first problem is raised as "<field>: expected ..., got ...", the
        # form the core turns into "expected ... @ channels.<name>.<field>".
        self.recipients = self._check_recipients()
        self.smtp_server = self._check_server()
        self.security = self._check_security()
        self._check_port()
        self._check_credentials()
        self.sender = self._check_sender()
        self._check_tls_files()
        if self.local_hostname is not None and not _HOST.fullmatch(self.local_hostname):
            raise ValueError(f"local_hostname: expected a host name, got {self.local_hostname!r}")

    # Each check raises ValueError naming the field and what was expected.

    def _check_recipients(self) -> list[str]:
        if not self.recipients:
            raise ValueError(
                "recipients: expected at least one address "
                "(set recipients = [...], EMAIL_RECIPIENTS or default_recipients)"
            )
        seen: list[str] = []
        for item in self.recipients:
            address = check_address(item, "recipients")
            if address.lower() not in (s.lower() for s in seen):
                seen.append(address)
        return seen

    def _check_server(self) -> str:
        server = self.smtp_server.strip()
        if not server or not _HOST.fullmatch(server):
            raise ValueError(f"smtp_server: expected a host name or IP address, got {server!r}")
        return server

    def _check_security(self) -> str:
        if self.security is None:
            return "tls" if self.smtp_port == DEFAULT_PORTS["tls"] else "starttls"
        mode = self.security.strip().lower()
        if mode not in SECURITY_MODES:
            raise ValueError(
                f"security: expected one of 'starttls', 'tls', 'none', got {self.security!r}"
            )
        return mode

    def _check_port(self) -> None:
        if self.smtp_port is None:
            self.smtp_port = DEFAULT_PORTS[self.security or "starttls"]
        elif not 0 < self.smtp_port < 65536:
            raise ValueError(f"smtp_port: expected 1-65535, got {self.smtp_port}")

    def _check_credentials(self) -> None:
        if self.username is not None and not self.username.strip():
            self.username = None
        if self.password is not None and not self.password.get():
            self.password = None
        if self.password is not None and self.username is None:
            raise ValueError("username: expected a user name when a password is set (EMAIL_USER)")
        if self.password is not None and self.security == "none":
            raise ValueError(
                "security: expected 'starttls' or 'tls' when a password is set ('none' would "
                "send it in clear text); for an open relay, remove username and password"
            )
        if self.username is not None and any(ord(c) < 32 or ord(c) == 127 for c in self.username):
            raise ValueError("username: expected a user name without control characters")

    def _check_sender(self) -> str | None:
        if self.sender is not None and self.sender.strip():
            return check_address(self.sender, "sender")
        if self.username is not None and _ADDRESS.fullmatch(self.username.strip()):
            return self.username.strip()
        raise ValueError(
            "sender: expected the From address (sender or EMAIL_SENDER); it defaults to "
            "username only when that is an email address"
        )

    def _check_tls_files(self) -> None:
        if self.ca_file is not None:
            if self.security == "none":
                raise ValueError(
                    "ca_file: expected security 'starttls' or 'tls' (no TLS with 'none')"
                )
            if not os.path.isfile(self.ca_file):
                raise ValueError(f"ca_file: expected an existing PEM file, got {self.ca_file!r}")
