"""Trainer service: the Celery worker that distils, evaluates and promotes adapters
(= `topictag trainer worker`; add --beat for the schedule in the same process)."""

import sys

from topictag.cli import app

if __name__ == "__main__":  # required: the evaluation engine may spawn workers
    app(args=["trainer", "worker", *sys.argv[1:]], prog_name="topictag")
