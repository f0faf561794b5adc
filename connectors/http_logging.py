"""httpx logs full URLs at INFO: keep its loggers quiet; strip queries and secrets if someone raises them."""

from __future__ import annotations

import logging
import weakref

from connectors.http_text import Redactor, strip_query

HTTPX_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                 "httpcore.proxy", "httpcore.socks")
_REDACTORS: weakref.WeakSet[Redactor] = weakref.WeakSet()
_SHAPES_ONLY = Redactor()


class QueryStripFilter(logging.Filter):
    """Rewrites a record's message with URL queries, secret-shaped strings and every live client's
    secret values masked (httpcore logs response headers at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        record.msg, record.args = mask_secrets(message), None
        return True


FILTER = QueryStripFilter()


def mask_secrets(text: str) -> str:
    """`text` with URL queries, secret-shaped strings and every live client's secret values masked."""
    for redact in list(_REDACTORS):
        text = redact.known(text)
    return _SHAPES_ONLY(strip_query(text))


def mask_in_logs(redact: Redactor) -> None:
    """Mask this client's secret values in filtered log records for as long as the redactor lives."""
    _REDACTORS.add(redact)


def quiet_httpx_loggers(*extra: str) -> None:
    """httpx and httpcore at WARNING; the filter on them (every logger that emits, children included:
    a logger's filter does not see records propagated from its children) and on `extra`."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in (*HTTPX_LOGGERS, *extra):
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
