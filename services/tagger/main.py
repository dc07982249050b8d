"""Tagger service: consume papers, tag them with the student, store topics (= `topictag tagger`)."""

from topictag.logs import setup_logging
from topictag.settings import get_settings
from topictag.tagger.service import run_tagger

if __name__ == "__main__":  # required: vLLM spawns its engine workers
    setup_logging("tagger")
    run_tagger(get_settings())
