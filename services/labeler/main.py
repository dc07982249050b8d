"""Labeler service: send a sampled share of papers to the teacher (= `topictag labeler`)."""

from topictag.labeler.service import run_labeler
from topictag.logs import setup_logging
from topictag.settings import get_settings

if __name__ == "__main__":
    setup_logging("labeler")
    run_labeler(get_settings())
