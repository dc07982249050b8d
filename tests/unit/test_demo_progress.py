"""The demo's papers/s: measured while tagging runs, not from one batch coming in at once."""

from topictag.demo import Progress


def test_rate_counts_the_papers_after_the_first_batch_over_the_time_since():
    progress = Progress(tagged=32, first_tag_at=100.0, last_tag_at=100.001, first_batch=32)
    assert progress.rate() is None and progress.rate_text() == "-"  # one batch: no rate yet
    progress.tagged, progress.last_tag_at = 96, 132.0
    assert progress.rate() == 2.0 and progress.rate_text() == "2.00"


def test_no_rate_before_anything_is_tagged():
    assert Progress().rate() is None
