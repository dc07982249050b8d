import random

from topictag.labeler.sampling import ConfidenceSampler, UniformSampler, create_policy
from topictag.settings import LabelerSettings


def paper_id(i) -> str:
    return f"2601.{i:05d}"


def test_same_paper_always_gets_the_same_answer():
    a, b = UniformSampler(0.3), UniformSampler(0.3)
    assert [a.wants(paper_id(i)) for i in range(500)] == [b.wants(paper_id(i)) for i in range(500)]


def test_share_matches_the_rate():
    for rate in (0.0, 0.05, 0.2, 1.0):
        share = sum(UniformSampler(rate).wants(paper_id(i)) for i in range(10_000)) / 10_000
        assert abs(share - rate) < 0.015


def test_a_higher_rate_keeps_every_paper_a_lower_rate_took():
    low, high = UniformSampler(0.1), UniformSampler(0.4)
    assert all(high.wants(paper_id(i)) for i in range(5000) if low.wants(paper_id(i)))


def stream(n: int, seed: int = 0) -> list[float]:
    """Mean token log-probabilities as a student gives them: mostly near 0, a long tail below."""
    rng = random.Random(seed)
    return [-rng.expovariate(4.0) for _ in range(n)]


def test_confidence_policy_spends_the_same_budget_on_the_least_sure_papers():
    confidences = stream(10_000)
    for rate in (0.05, 0.2, 0.5):
        sampler = ConfidenceSampler(rate, window=1000, warmup=50)
        taken = [c for i, c in enumerate(confidences) if sampler.wants(paper_id(i), c)]
        assert abs(len(taken) / len(confidences) - rate) < 0.02
        # What it took is what the student was least sure of: its confidences sit in the
        # lowest share of the stream, far below the stream's typical value.
        cut = sorted(confidences)[int(rate * len(confidences))]
        assert sum(c <= cut * 0.8 for c in taken) / len(taken) > 0.9


def test_confidence_policy_follows_a_shift_of_the_scale():
    """A new adapter is surer of everything: the window moves with it and the budget holds."""
    sampler = ConfidenceSampler(0.2, window=500, warmup=50)
    before = [sampler.wants(paper_id(i), c) for i, c in enumerate(stream(3000, seed=1))]
    after = [sampler.wants(paper_id(i), c / 10) for i, c in enumerate(stream(3000, seed=2), start=3000)]
    assert abs(sum(before) / 3000 - 0.2) < 0.03
    assert abs(sum(after[500:]) / 2500 - 0.2) < 0.03  # once the window holds only the new adapter's


def test_confidence_policy_samples_uniformly_until_it_has_seen_enough_and_without_a_confidence():
    sampler, uniform = ConfidenceSampler(0.3, window=100, warmup=40), UniformSampler(0.3)
    first = [sampler.wants(paper_id(i), -0.5) for i in range(40)]
    assert first == [uniform.wants(paper_id(i)) for i in range(40)]
    assert [sampler.wants(paper_id(i)) for i in range(40, 200)] == [uniform.wants(paper_id(i)) for i in range(40, 200)]
    assert sampler.wants("x", -5.0) and not sampler.wants("y", 0.0)  # judged by the window now


def test_confidence_policy_at_the_edges_of_the_rate():
    everything, nothing = ConfidenceSampler(1.0, warmup=0), ConfidenceSampler(0.0, warmup=0)
    confidences = stream(300)
    assert all(everything.wants(paper_id(i), c) for i, c in enumerate(confidences))
    assert not any(nothing.wants(paper_id(i), c) for i, c in enumerate(confidences))


def test_policy_from_settings():
    assert isinstance(create_policy(LabelerSettings(sample_rate=0.5)), UniformSampler)
    policy = create_policy(LabelerSettings(sample_rate=0.1, policy="confidence", confidence_window=200))
    assert isinstance(policy, ConfidenceSampler) and policy.reads_tagged and policy.rate == 0.1
