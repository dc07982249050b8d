from topictag.labeler.sampling import UniformSampler, create_policy
from topictag.schemas import Paper
from topictag.settings import LabelerSettings


def paper(i) -> Paper:
    return Paper(arxiv_id=f"2601.{i:05d}", abstract="x")


def test_same_paper_always_gets_the_same_answer():
    a, b = UniformSampler(0.3), UniformSampler(0.3)
    assert [a.wants(paper(i)) for i in range(500)] == [b.wants(paper(i)) for i in range(500)]


def test_share_matches_the_rate():
    for rate in (0.0, 0.05, 0.2, 1.0):
        share = sum(UniformSampler(rate).wants(paper(i)) for i in range(10_000)) / 10_000
        assert abs(share - rate) < 0.015


def test_a_higher_rate_keeps_every_paper_a_lower_rate_took():
    low, high = UniformSampler(0.1), UniformSampler(0.4)
    assert all(high.wants(paper(i)) for i in range(5000) if low.wants(paper(i)))


def test_policy_from_settings():
    assert isinstance(create_policy(LabelerSettings(sample_rate=0.5)), UniformSampler)
