"""Trainer service: `worker [--beat]` runs the Celery worker that distils, evaluates and
promotes adapters (--beat: the schedule in the same process); `beat` runs the schedule
alone, one per deployment (= `topictag trainer worker|beat`). Configured by TOPICTAG_*
environment variables (docs/settings.md)."""

import argparse

from topictag.logs import setup_logging
from topictag.settings import get_settings
from topictag.trainer.tasks import run_trainer

if __name__ == "__main__":  # required: the evaluation engine may spawn workers
    parser = argparse.ArgumentParser(description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    roles.add_parser("worker").add_argument("--beat", action="store_true", help="also run the beat schedule")
    roles.add_parser("beat")
    args = parser.parse_args()
    setup_logging("trainer" if args.role == "worker" else "trainer-beat")
    run_trainer(get_settings(), args.role, with_beat=getattr(args, "beat", False))
