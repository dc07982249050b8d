"""Minimum-Bayes-risk choice: the candidate that agrees most with the others."""

from topictag.student.mbr import choose, rouge1_f, _words


def test_the_consensus_wins_over_the_greedy_outlier():
    candidates = [
        "Reinforcement Learning",  # greedy, alone in its wording
        "Time Series Anomaly Detection",
        "Anomaly Detection in Time Series",
        "Time Series Anomaly Detection",
    ]
    assert choose(candidates) == 1  # ties with its twin at 3: the earlier one


def test_ties_keep_the_first_and_a_lone_candidate_is_chosen():
    assert choose(["Graph Neural Networks", "Graph Neural Networks", "Graph Neural Networks"]) == 0
    assert choose(["Federated Learning", "Federated Learning Privacy"]) == 0
    assert choose(["Only One"]) == 0


def test_rouge1_is_the_f1_of_shared_words():
    assert rouge1_f(_words("time series anomaly detection"), _words("anomaly detection")) == 2 * (0.5 * 1.0) / 1.5
    assert rouge1_f(_words("Federated Learning"), _words("graph networks")) == 0.0
    assert rouge1_f(_words("A b"), _words("a B")) == 1.0
