"""Logging for every service: one line per event, with the service name.

``TOPICTAG_LOG_FORMAT=json`` makes each line one JSON object (ts, level, service, logger,
message, and whatever a call passes as ``extra``: arxiv_id, adapter_version, group, ...),
so a log pipeline can follow one paper or one adapter across services.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from topictag.settings import LogSettings


def json_formatter(service: str) -> logging.Formatter:
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": service},
        timestamp="ts",  # UTC, ISO 8601
    )


def setup_logging(service: str, level: str | None = None) -> None:
    settings = LogSettings()
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(json_formatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level or settings.level, handlers=[handler], force=True)
    # alembic says which plugins it set up on every start; the store logs the upgrades it runs.
    for noisy in ("kafka", "httpx", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
