"""The student engines on the real SmolLM2 model."""

import pytest

from tests.conftest import student_settings
from topictag.schemas import Paper
from topictag.settings import Settings, StudentSettings
from topictag.student.normalise import MAX_TOPIC_CHARS, MAX_TOPIC_WORDS

pytestmark = pytest.mark.model


def papers_from(rows):
    return [Paper(arxiv_id=r["arxiv_id"], title=r["title"], abstract=r["abstract"]) for r in rows]


def assert_sane(topics, n):
    assert len(topics) == n
    for t in topics:
        assert t and "\n" not in t
        assert len(t) <= MAX_TOPIC_CHARS and len(t.split()) <= MAX_TOPIC_WORDS
        assert not t.lower().startswith("the topic")


def test_vllm_engine_gives_one_clean_topic_per_paper(student_engine, sample_papers):
    predictions = student_engine.predict(papers_from(sample_papers[:8]))
    assert_sane([p.topic for p in predictions], 8)
    assert student_engine.adapter_version == "base"


def test_overlong_abstract_is_cut_to_fit_the_context(student_engine, sample_papers):
    long = Paper(arxiv_id="x", abstract=" ".join(r["abstract"] for r in sample_papers[:6]))
    assert len(student_engine.tokenizer.encode(long.abstract)) > student_engine.settings.student.max_model_len
    assert_sane([p.topic for p in student_engine.predict([long])], 1)


def test_transformers_engine_agrees_in_form(sample_papers):
    from topictag.student.engine import create_engine

    engine = create_engine(Settings(student=StudentSettings(engine="transformers")))
    assert type(engine).__name__ == "TransformersEngine"
    assert_sane([p.topic for p in engine.predict(papers_from(sample_papers[:4]))], 4)


def test_mbr_keeps_the_candidate_the_others_agree_with(student_engine, sample_papers):
    """With mbr_samples set, each topic is the consensus of the greedy answer and the seeded
    samples, which are the same on every call."""
    from topictag.student import mbr
    from topictag.student.normalise import normalise_topic
    from topictag.student.prompt import build_messages

    papers = papers_from(sample_papers[:2])
    conversations = [build_messages(p.abstract, p.title, few_shot=True, truncate=student_engine.truncate_abstract) for p in papers]
    candidates = student_engine.candidates(conversations, 4, 0.7)
    assert [len(c) for c in candidates] == [5, 5]
    assert [c[0] for c in candidates] == student_engine.generate(conversations)  # greedy first
    with student_settings(student_engine, mbr_samples=4, mbr_temperature=0.7):
        topics = [p.topic for p in student_engine.predict(papers)]
    # The same candidates again (seeded), and the consensus of each kept.
    normalised = [[normalise_topic(x) for x in c] for c in candidates]
    assert topics == [n[mbr.choose(n)] for n in normalised]


def test_mbr_on_a_batch_larger_than_one_engine_step(student_engine, sample_papers):
    """Seeded samples for more prompts than one engine step holds (4,096 tokens on vLLM's
    CPU backend): a prompt split across steps once killed the engine core."""
    with student_settings(student_engine, mbr_samples=2):
        assert_sane([p.topic for p in student_engine.predict(papers_from(sample_papers[:16]))], 16)
    assert_sane([p.topic for p in student_engine.predict(papers_from(sample_papers[16:18]))], 2)  # still alive
