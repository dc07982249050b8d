"""Tagger service: consume papers, tag them with the student, store the topics
(= `topictag tagger`). Configured by TOPICTAG_* environment variables (docs/settings.md)."""

import argparse

from topictag.logs import setup_logging
from topictag.settings import get_settings
from topictag.tagger.service import run_tagger

if __name__ == "__main__":  # required: vLLM spawns its engine workers
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; refuses stray arguments
    setup_logging("tagger")
    run_tagger(get_settings())
