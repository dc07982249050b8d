"""Labeler service: send a sampled share of papers to the teacher, store its labels
(= `topictag labeler`). Configured by TOPICTAG_* environment variables (docs/settings.md)."""

import argparse

from topictag.labeler.service import run_labeler
from topictag.logs import setup_logging
from topictag.settings import get_settings

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; refuses stray arguments
    setup_logging("labeler")
    run_labeler(get_settings())
