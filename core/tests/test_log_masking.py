"""Secret masking in logs: a filter on pixalert's and its libraries' loggers, not the host's."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pixalert
import pytest
from pixalert.channels import register_secret

SECRET = "https://hooks.example.com/T9/B9/log-masking-secret-7c1d"
LEAK = "log-masking-secret-7c1d"


def family_loggers() -> list[str]:
    """Every logger of pixalert's and its HTTP and SMTP libraries' families made so far."""
    from pixalert._redact import LOGGER_FAMILIES

    prefixes = tuple(f + "." for f in LOGGER_FAMILIES)
    return sorted(
        {
            *LOGGER_FAMILIES,
            *(
                name
                for name, logger in logging.Logger.manager.loggerDict.items()
                if name.startswith(prefixes) and isinstance(logger, logging.Logger)
            ),
        }
    )


@pytest.fixture
def host_factory() -> Iterator[list[logging.LogRecord]]:
    """A host application's own record factory (tagging each record), restored afterwards."""
    original = logging.getLogRecordFactory()
    made: list[logging.LogRecord] = []

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.host_tag = "mine"
        made.append(record)
        return record

    logging.setLogRecordFactory(factory)
    yield made
    logging.setLogRecordFactory(original)


def test_every_logger_pixalert_and_its_libraries_write_to_is_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import httpcore  # noqa: F401
    from pixalert.http import make_client

    make_client()  # the HTTP libraries are imported; their loggers get the filter
    register_secret(SECRET)
    caplog.set_level(logging.DEBUG)
    names = family_loggers()
    assert {"pixalert", "httpx", "httpcore.http11", "aiohttp.client", "aiosmtplib"} <= set(names)
    for name in names:
        logging.getLogger(name).error("POST %s failed", SECRET)
    assert len(caplog.records) == len(names)
    assert LEAK not in caplog.text
    for record in caplog.records:
        assert record.getMessage() == "POST ********** failed", record.name


def test_the_hosts_record_factory_is_left_alone_and_masking_works_with_it(
    host_factory: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    ours = logging.getLogRecordFactory()
    register_secret(SECRET)
    from pixalert.http import make_client

    make_client()
    assert logging.getLogRecordFactory() is ours  # neither replaced nor wrapped
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").info("HTTP Request: POST %s", SECRET)
    logging.getLogger("pixalert").warning("target %s failed", SECRET)
    assert [r.host_tag for r in caplog.records] == ["mine", "mine"]  # type: ignore[attr-defined]
    assert host_factory[-2:] == caplog.records
    assert LEAK not in caplog.text


def test_masking_goes_on_when_the_host_installs_a_factory_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_secret(SECRET)
    original = logging.getLogRecordFactory()
    # A host that sets its own factory without chaining to the previous one.
    logging.setLogRecordFactory(lambda *a, **k: logging.LogRecord(*a, **k))
    try:
        caplog.set_level(logging.INFO)
        logging.getLogger("pixalert").warning("channel failed: %s", SECRET)
        logging.getLogger("httpx").info("HTTP Request: POST %s", SECRET)
    finally:
        logging.setLogRecordFactory(original)
    assert len(caplog.records) == 2
    assert LEAK not in caplog.text


def test_unrelated_loggers_and_the_hosts_handlers_are_not_touched() -> None:
    host_handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(host_handler)
    try:
        app = logging.getLogger("myapp.sub")
        register_secret(SECRET)
        from pixalert.http import make_client

        make_client()
        assert host_handler.filters == []
        assert not any(isinstance(f, pixalert.SecretFilter) for f in root.filters)
        assert app.filters == [] and logging.getLogger("myapp").filters == []
        assert any(isinstance(f, pixalert.SecretFilter) for f in logging.getLogger("httpx").filters)
        app.warning("the host's own text %s", SECRET)
        assert LEAK in host_handler.stream.getvalue()  # type: ignore[attr-defined]
    finally:
        root.removeHandler(host_handler)


def test_the_filter_on_a_hosts_handler_masks_message_exception_and_stack() -> None:
    register_secret(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(pixalert.SecretFilter())
    app = logging.getLogger("myapp.masked")
    app.addHandler(handler)
    app.propagate = False
    try:
        app.warning("posting to %s", SECRET)
        try:
            raise ConnectionError(f"cannot connect to {SECRET}")
        except ConnectionError:
            app.exception("send failed")
        app.warning("where", stack_info=True, extra={"note": SECRET})
    finally:
        app.removeHandler(handler)
        app.propagate = True
    text = stream.getvalue()
    assert "posting to **********" in text
    assert "ConnectionError: cannot connect to **********" in text
    assert "Stack (most recent call last)" in text
    assert LEAK not in text


def test_exception_text_on_pixalert_loggers_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    register_secret(SECRET)
    caplog.set_level(logging.ERROR)
    try:
        try:
            raise OSError(f"refused: {SECRET}")
        except OSError as exc:
            raise RuntimeError("delivery failed") from exc
    except RuntimeError:
        logging.getLogger("pixalert").exception("background delivery failed")
    assert "OSError: refused: **********" in caplog.text
    assert LEAK not in caplog.text


def test_the_filter_keeps_every_record_and_leaves_clean_ones_as_they_are() -> None:
    record = logging.LogRecord("myapp", logging.INFO, __file__, 1, "n=%d", (3,), None)
    assert pixalert.SecretFilter().filter(record) is True
    assert (record.msg, record.args) == ("n=%d", (3,))


def test_the_known_library_loggers_are_all_the_libraries_make() -> None:
    """A new httpx, httpcore or aiohttp logger shows up here (nox -s http_newest).

    aiosmtplib's are checked by pixalert-email's tests (the core does not depend on it).
    """
    script = (
        "import json, logging, aiohttp, httpcore, httpx\n"
        "from pixalert._redact import LOGGER_FAMILIES\n"
        "names = [n for n, l in logging.Logger.manager.loggerDict.items()\n"
        "         if isinstance(l, logging.Logger) and n.split('.')[0] in LOGGER_FAMILIES\n"
        "         and not n.startswith('pixalert')]\n"
        "print(json.dumps(sorted(names)))\n"
    )
    made = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
    )
    from pixalert._redact import _LIBRARY_LOGGERS, LOGGER_FAMILIES

    assert set(made) <= {*LOGGER_FAMILIES, *_LIBRARY_LOGGERS}
    assert made  # the libraries do log


def test_a_plugin_puts_its_librarys_loggers_under_the_same_filter() -> None:
    from pixalert.channels import mask_loggers

    secret = "https://hooks.example.com/acme/Acme-secret-token-42"
    register_secret(secret)
    child = logging.getLogger("acmelib.transport")  # made before mask_loggers
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    child.addHandler(handler)
    try:
        mask_loggers("acmelib")
        child.warning("POST %s failed", secret)
        logging.getLogger("acmelib.later").addHandler(handler)
        mask_loggers("acmelib")  # again, for loggers the library made since
        logging.getLogger("acmelib.later").warning("GET %s", secret)
    finally:
        child.removeHandler(handler)
        logging.getLogger("acmelib.later").removeHandler(handler)
    assert "Acme-secret-token-42" not in stream.getvalue()
    assert stream.getvalue().count("**********") == 2
