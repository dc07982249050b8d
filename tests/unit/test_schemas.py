import json
from datetime import date

import pytest

from topictag.schemas import InvalidPaper, Paper, decode_paper, paper_from_record
from topictag.settings import PaperLimits

LIMITS = PaperLimits()


def msg(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_decodes_a_stream_row():
    row = {
        "arxiv_id": "2503.11794",
        "title": "A title",
        "abstract": "An abstract.",
        "categories": "cs.CV cs.LG",
        "primary_category": "cs.CV",
        "first_seen_date": "2025-03-18",
    }
    paper = paper_from_record(row)
    assert paper.categories == ["cs.CV", "cs.LG"]
    assert paper.published == date(2025, 3, 18)
    assert decode_paper(paper.to_bytes(), LIMITS) == paper


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty message"),
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (msg(title="no id or abstract"), "arxiv_id is required; abstract is required"),
        (msg(arxiv_id="1", abstract="   "), "abstract must not be empty"),
        (msg(arxiv_id="1", abstract=7), "abstract"),
        (msg(arxiv_id="a b", abstract="x"), "arxiv_id may hold only"),
        (msg(arxiv_id="1", abstract="x" * (LIMITS.max_abstract_chars + 1)), "over the 10000 limit"),
        (b"{" + b" " * LIMITS.max_message_bytes + b"}", "over the 262144-byte limit"),
        (msg(arxiv_id="1", abstract="x", published="yesterday"), "published"),
    ],
)
def test_invalid_messages_say_why(value, reason):
    with pytest.raises(InvalidPaper) as err:
        decode_paper(value, LIMITS)
    assert reason in err.value.reason


def test_control_characters_are_blanked_not_fatal():
    paper = decode_paper(msg(arxiv_id="1", abstract="a\x00b\x1bc\nd"), LIMITS)
    assert paper.abstract == "a b c\nd"


def test_old_style_ids_are_accepted():
    assert Paper(arxiv_id="cs/0112017v2", abstract="x").arxiv_id == "cs/0112017v2"
