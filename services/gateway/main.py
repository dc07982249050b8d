"""Gateway service: the HTTP API over the store (= `topictag gateway`)."""

from topictag.gateway.app import serve
from topictag.logs import setup_logging
from topictag.settings import get_settings

if __name__ == "__main__":
    setup_logging("gateway")
    serve(get_settings())
