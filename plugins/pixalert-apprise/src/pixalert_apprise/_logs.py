"""Keep secrets out of what Apprise, requests and urllib3 log.

Apprise logs through the ``apprise`` logger: at DEBUG the request URL it is
about to call (``JSON POST URL: http://host/path/token``), at ERROR a URL it
cannot parse, and its own privacy rendering of URLs leaves path tokens and
custom headers visible. urllib3 (under requests, which most Apprise services
use) logs request paths. :func:`install` puts pixalert's own
:class:`pixalert.SecretFilter` on those loggers and their children
(:func:`pixalert.channels.mask_loggers`). The channel calls it when it is
built and before each send, so loggers a service's module creates later are
covered as they appear. The filter rewrites a record on the logger, before any
handler runs, so Apprise's own result log capture (``AppriseResult.logs()``)
is masked too.
"""

from __future__ import annotations

from pixalert.channels import mask_loggers

__all__ = ["LOGGERS", "install"]

LOGGERS = ("apprise", "urllib3", "requests", "requests_oauthlib", "oauthlib")
"""The loggers (and their children) whose records are masked."""


def install() -> None:
    """Mask secrets in every record of :data:`LOGGERS` and their children (safe to repeat)."""
    mask_loggers(*LOGGERS)
