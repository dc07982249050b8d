"""The ``topictag`` command: runs every service, ingests papers, prepares and scores
models, operates the system. One module per command group; ``app`` is the root."""

# Each module registers its commands on import, in the order `topictag --help` lists them.
from topictag.cli import services  # noqa: I001
from topictag.cli import papers, models, ops
from topictag.cli.app import app

__all__ = ["app", "models", "ops", "papers", "services"]
