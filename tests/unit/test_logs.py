"""bridge.runtime.logs: the redacting filter masks registered secrets in the message, its args, tracebacks and stacks,
and the JSON formatter writes one object per line with the documented fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.runtime.logs import JsonFormatter, RedactingFilter, configure_logging

SECRET = "lg-Pw-4e7a"  # also in tests/integration/conftest.py TEST_SECRETS
TOKEN = "lg-tok-0c93d1"  # likewise


class Rig:
    """A logger with one handler (stream + RedactingFilter + formatter), as configure_logging sets up the root."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.redact = RedactingFilter()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatter)
        handler.addFilter(self.redact)
        # A logger of its own, outside logging's manager: pytest's log capture finds loggers through the manager
        # (since 9.2 also those that do not propagate) and would keep the raw record, secrets and all, which the
        # suite's secret scan then rightly reports. Here only our handler sees the record, as in the bridge.
        self.log = logging.Logger(f"test.logs.{id(self)}", logging.DEBUG)
        self.log.addHandler(handler)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture(params=["human", "json"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    fmt = JsonFormatter() if request.param == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    r = Rig(fmt)
    r.redact.add(SECRET)
    yield r
    r.log.handlers.clear()


def _boom(password: str) -> None:
    raise RuntimeError(f"login failed with {password}")


def test_secret_in_message_is_masked(rig: Rig) -> None:
    rig.log.warning(f"the password is {SECRET}!")
    assert SECRET not in rig.text and "the password is ***!" in rig.text


def test_secret_in_args_is_masked(rig: Rig) -> None:
    rig.log.info("user %s password %s", "op", SECRET)
    assert SECRET not in rig.text and "user op password ***" in rig.text


def test_secret_in_exception_traceback_is_masked(rig: Rig) -> None:
    try:
        _boom(SECRET)
    except RuntimeError:
        rig.log.exception("browse failed")
    assert "browse failed" in rig.text
    assert "RuntimeError: login failed with ***" in rig.text and "Traceback" in rig.text
    assert SECRET not in rig.text


def test_secret_in_exc_info_tuple_and_stack_is_masked(rig: Rig) -> None:
    try:
        _boom(SECRET)
    except RuntimeError as exc:
        error = exc
    rig.log.error("late report", exc_info=(type(error), error, error.__traceback__), stack_info=True)
    assert "login failed with ***" in rig.text and "Stack" in rig.text
    assert SECRET not in rig.text


def test_secret_registered_at_run_time_and_overlapping_secrets(rig: Rig) -> None:
    rig.log.info("before: %s", TOKEN)
    assert TOKEN in rig.text  # not known yet: nothing to mask (proves the rig would show a leak)
    rig.redact.add(TOKEN[:8])  # a shorter secret inside the longer one
    rig.redact.add(TOKEN)
    rig.log.info("after: %s", TOKEN)
    last = rig.text.strip().splitlines()[-1]
    assert "after: ***" in last and TOKEN[8:] not in last


def test_short_or_empty_secrets_are_ignored_and_text_unchanged(rig: Rig) -> None:
    rig.redact.add("")
    rig.redact.add(None)
    rig.redact.add("abc")  # too short: masking it would garble ordinary words
    rig.log.info("abcdef %d%%", 5)
    assert "abcdef 5%" in rig.text


def test_bad_format_args_do_not_raise_from_the_filter(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.log.info("%d tags", "many")  # logging reports this on stderr (handleError) instead of raising
    rig.log.info("still logging")
    assert "still logging" in rig.text
    assert "--- Logging error ---" in capsys.readouterr().err


def test_json_lines_have_the_documented_fields() -> None:
    rig = Rig(JsonFormatter())
    rig.log.info("hello %s", "wörld")
    try:
        _boom("x")
    except RuntimeError:
        rig.log.exception("failed")
    lines = rig.text.splitlines()
    assert len(lines) == 2  # the traceback stays inside its object: one object per line
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "info" and first["logger"] == rig.log.name and first["message"] == "hello wörld"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "error" and "RuntimeError: login failed with x" in second["exception"]


def test_configure_logging_filters_by_level(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        redact = configure_logging("warning", "json")
        redact.add(SECRET)
        log = logging.getLogger("bridge.test_logs")
        log.info("quiet")
        log.warning("loud %s", SECRET)
        err = capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for noisy in ("asyncua", "uvicorn", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.NOTSET)
    entries = [json.loads(line) for line in err.splitlines()]
    assert [(e["level"], e["message"]) for e in entries] == [("warning", "loud ***")]


def _fault_record(code_name: str) -> logging.LogRecord:
    return logging.LogRecord(
        "asyncua.server.uaprocessor",
        logging.ERROR,
        __file__,
        1,
        "sending service fault response: %s (%s)",
        ("some doc", code_name),
        None,
    )


@pytest.mark.parametrize("keep_as_debug", [False, True])
def test_client_faults_are_not_server_errors(keep_as_debug: bool) -> None:
    """asyncua's ERROR duplicate of a refusal the bridge already logged at WARNING is dropped (or DEBUG when
    debugging); a fault that is the server's own failure stays an ERROR."""
    from bridge.runtime.logs import ClientFaultFilter

    f = ClientFaultFilter(keep_as_debug=keep_as_debug)
    for client_mistake in (
        "BadUserAccessDenied",
        "BadCertificateUriInvalid",
        "BadIdentityTokenRejected",
        "BadSessionIdInvalid",
    ):
        record = _fault_record(client_mistake)
        assert f.filter(record) is keep_as_debug and record.levelno == logging.DEBUG
    internal = _fault_record("BadInternalError")
    assert f.filter(internal) and internal.levelno == logging.ERROR
    other = logging.LogRecord("asyncua.server.uaprocessor", logging.ERROR, __file__, 1, "other %s", ("x",), None)
    assert f.filter(other) and other.levelno == logging.ERROR
    token = logging.LogRecord(
        "asyncua.server.internal_session",
        logging.ERROR,
        __file__,
        1,
        "Rejected active session UserIdentityToken not supported",
        (),
        None,
    )
    assert f.filter(token) and token.levelname == "WARNING"  # the one line about that refusal: kept, as WARNING


def test_configure_logging_installs_the_fault_filter_once(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for _ in range(2):
            configure_logging("info", "human")
        logging.getLogger("asyncua.server.uaprocessor").error(
            "sending service fault response: %s (%s)", "d", "BadUserAccessDenied"
        )
        logging.getLogger("asyncua.server.uaprocessor").error(
            "sending service fault response: %s (%s)", "d", "BadInternalError"
        )
        err = capsys.readouterr().err
        assert "BadUserAccessDenied" not in err and "BadInternalError" in err
        assert len(logging.getLogger("asyncua.server.uaprocessor").filters) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_taken_port_traceback_from_asyncua_is_dropped() -> None:
    """The bridge reports a taken port in one line naming the setting; asyncua's traceback for it goes."""
    import errno
    import sys

    from bridge.runtime.logs import ClientFaultFilter

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord(
            "asyncua.server.server", logging.ERROR, __file__, 1, "%s error starting server", ("server",), info
        )

    f = ClientFaultFilter()
    assert not f.filter(record(OSError(errno.EADDRINUSE, "address already in use")))
    assert f.filter(record(RuntimeError("something else")))  # any other start failure keeps its traceback


def test_the_asyncua_log_formats_the_fault_filter_matches_are_still_there() -> None:
    """bridge/opcua/_asyncua/ section 12: an asyncua upgrade that rewords these lines fails here by name."""
    from pathlib import Path

    import asyncua

    from bridge.runtime import logs

    server = Path(asyncua.__file__).parent / "server"
    for module, text in (
        (logs._FAULT_LOGGER, logs._FAULT_MESSAGE),
        (logs._SESSION_LOGGER, logs._TOKEN_REFUSED),
        (logs._START_LOGGER, "%s error starting server"),
    ):
        source = (server / f"{module.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8")
        assert f'"{text}"' in source, f"{module} no longer logs {text!r}"
