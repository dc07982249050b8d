"""The student engines on the real SmolLM2 model."""

import pytest

from tests.conftest import student_settings
from topictag.hardware import resolve_dtype
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


def test_transformers_engine_agrees_in_form_and_confidence(student_engine, sample_papers):
    from topictag.student.factory import create_engine

    engine = create_engine(Settings(student=StudentSettings(engine="transformers")))
    assert type(engine).__name__ == "TransformersEngine"
    papers = papers_from(sample_papers[:4])
    predictions = engine.predict(papers)  # one padded batch: the shorter answers' padding is not scored
    assert_sane([p.topic for p in predictions], 4)
    same = [(a.confidence, b.confidence) for a, b in zip(predictions, student_engine.predict(papers)) if a.raw == b.raw]
    assert same  # greedy on the same weights: most answers are the same word for word
    for ours, vllms in same:
        assert ours == pytest.approx(vllms, abs=0.1)


def test_mbr_keeps_the_candidate_the_others_agree_with(student_engine, sample_papers):
    """With mbr_samples set, each topic is the consensus of the greedy answer and the seeded
    samples, which are the same on every call."""
    from topictag.student import mbr
    from topictag.student.normalise import normalise_topic
    from topictag.student.prompt import build_messages

    papers = papers_from(sample_papers[:2])
    # As the engine asks (no title in the prompt by default: TOPICTAG_STUDENT_PROMPT_TITLE).
    conversations = [build_messages(p.abstract, few_shot=True, truncate=student_engine.truncate_abstract) for p in papers]
    candidates = student_engine.candidates(conversations, 4, 0.7)
    assert [len(samples) for _, samples in candidates] == [4, 4]
    greedy = student_engine.generate(conversations)
    # The same answers; their log-probabilities agree to rounding: another batch shape rounds
    # differently, ~1e-5 in float32 and up to ~0.01 in bf16 (CPUs with AMX).
    tolerance = 1e-4 if resolve_dtype(student_engine.settings.student.dtype) == "float32" else 0.02
    assert [g.text for g, _ in candidates] == [g.text for g in greedy]
    assert [g.mean_logprob for g, _ in candidates] == pytest.approx([g.mean_logprob for g in greedy], abs=tolerance)
    with student_settings(student_engine, mbr_samples=4, mbr_temperature=0.7):
        predictions = student_engine.predict(papers)
    # The same candidates again (seeded), and the consensus of each kept, greedy first.
    normalised = [[normalise_topic(x) for x in (g.text, *samples)] for g, samples in candidates]
    assert [p.topic for p in predictions] == [n[mbr.choose(n)] for n in normalised]
    assert [p.confidence for p in predictions] == pytest.approx([g.mean_logprob for g in greedy], abs=tolerance)  # greedy's


def test_confidence_is_the_mean_log_probability_of_the_answer(student_engine, sample_papers):
    """The confidence the labeler samples by: the mean log-probability of the answer's tokens
    (its end token included, if it ended), as a plain forward pass over prompt and answer gives it."""
    import torch
    from transformers import AutoModelForCausalLM

    from topictag.student.prompt import build_messages

    tokenizer = student_engine.tokenizer
    papers = papers_from(sample_papers[:6])
    conversations = [build_messages(p.abstract, p.title, few_shot=True, truncate=student_engine.truncate_abstract) for p in papers]
    completions = student_engine.generate(conversations)
    model = AutoModelForCausalLM.from_pretrained(student_engine.model_path, dtype=torch.float32).eval()
    for conversation, completion in zip(conversations, completions):
        prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        answer_ids = tokenizer(completion.text, add_special_tokens=False).input_ids
        if len(answer_ids) < student_engine.settings.student.max_new_tokens:  # it ended, not cut at the limit
            answer_ids.append(tokenizer.eos_token_id)
        with torch.inference_mode():
            logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0, len(prompt_ids) - 1 : -1]
        expected = logits.log_softmax(-1).gather(-1, torch.tensor(answer_ids)[:, None]).mean().item()
        assert completion.mean_logprob == pytest.approx(expected, abs=0.05), completion.text
    assert len({round(c.mean_logprob, 3) for c in completions}) > 1  # it tells papers apart


def test_mbr_on_a_batch_larger_than_one_engine_step(student_engine, sample_papers):
    """Seeded samples for more prompts than one engine step holds (4,096 tokens on vLLM's
    CPU backend): a prompt split across steps once killed the engine core."""
    with student_settings(student_engine, mbr_samples=2):
        assert_sane([p.topic for p in student_engine.predict(papers_from(sample_papers[:16]))], 16)
    assert_sane([p.topic for p in student_engine.predict(papers_from(sample_papers[16:18]))], 2)  # still alive
