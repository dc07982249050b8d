"""Gateway service: the HTTP API and dashboard over the store (= `topictag gateway`),
bound to TOPICTAG_GATEWAY_HOST:TOPICTAG_GATEWAY_PORT. Configured by TOPICTAG_* environment
variables (docs/settings.md)."""

import argparse

from topictag.gateway.app import serve
from topictag.logs import setup_logging
from topictag.settings import get_settings

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; refuses stray arguments
    setup_logging("gateway")
    serve(get_settings())
