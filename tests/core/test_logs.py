"""Log redaction: known secrets and anything shaped like one never reach a log line."""
import io
import logging

from core.logs import JsonFormatter, RedactingFilter, redact

TOKEN = "1795482037:12345:4:" + "ab" * 80
KEY = "0x" + "cd" * 40


def test_redact_shapes_and_known_values():
    text = f"token={TOKEN} key={KEY} proxy=http://user:hunter22@h:1 api=tok-123456"
    out = redact(text, ["tok-123456"])
    assert TOKEN not in out and "cd" * 40 not in out and "hunter22" not in out and "tok-123456" not in out
    assert "http://user:***@h:1" in out


def test_filter_masks_args_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["pw-secret"]))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("t.redact")
    log.addHandler(handler)
    try:
        raise RuntimeError(f"bad key {KEY} pw-secret")
    except RuntimeError:
        log.exception("failed with %s", TOKEN)
    log.removeHandler(handler)
    out = stream.getvalue()
    assert "failed with ***" in out and "RuntimeError" in out
    assert TOKEN not in out and "cd" * 40 not in out and "pw-secret" not in out
