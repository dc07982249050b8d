import pytest

from topictag.evaluation import comparable, score


def test_reproduces_the_original_projects_figures(teacher_labels):
    """On the 750 dev rows the original 8B student scores BLEU-3 34.64, ROUGE-1 F 52.66 and
    original-method BLEU 43.61 (data/README.md)."""
    dev = teacher_labels
    result = score(dev["original_student_prediction"].tolist(), dev["teacher_topic"].tolist(), embeddings=False)
    assert result["n"] == 750
    assert result["bleu3"] == pytest.approx(34.64, abs=0.01)
    assert result["rouge1_f"] == pytest.approx(52.66, abs=0.01)
    assert result["original_bleu"] == pytest.approx(43.61, abs=0.01)


def test_identical_topics_score_full_marks():
    topics = ["Graph Neural Networks", "Federated Learning Privacy", "Anomaly Detection in Time Series"]
    result = score(topics, topics)
    assert result["bleu3"] == pytest.approx(100)
    assert result["rouge1_f"] == pytest.approx(100)
    assert result["exact_match"] == 100
    assert result["embedding_similarity"] == pytest.approx(100, abs=0.01)


def test_unrelated_topics_score_low_and_empty_answers_count_as_misses():
    result = score(["Protein Folding", ""], ["Federated Learning", "Graph Neural Networks"])
    assert result["rouge1_f"] == 0
    assert result["exact_match"] == 0
    assert result["embedding_similarity"] < 40


def test_quotes_and_case_do_not_count():
    assert comparable('"Network Embedding"') == comparable("network embedding")


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score(["a"], ["a", "b"])


def test_readability_names_each_way_a_topic_fails():
    from topictag.evaluation import readability

    topics = [
        "Semantic Clipping Efficient Vision Language Modeling",  # the title, cut
        "Graph Neural Networks for Molecular Property Prediction",  # a prompt example
        "This Paper Describes a Novel Method",  # a sentence
        "Learning Rate Schedules for the",  # cut off
        "Unclassified",
        "Token Pruning for Vision-Language Models",  # a topic
    ]
    titles = ["Semantic-Clipping: Efficient Vision-Language Modeling with Semantic-Guided Visual Selection"] + ["A Title"] * 5
    result = readability(topics, titles)
    share = round(100 / 6, 2)
    assert result == {"title_copy": share, "example_copy": share, "sentence": share, "cut_off": share,
                      "unclassified": share}
    assert readability(topics)["title_copy"] is None


def test_the_teachers_topics_read_as_topics(teacher_labels):
    from topictag.evaluation import readability

    assert readability(teacher_labels["teacher_topic"].tolist()) == {
        "title_copy": None, "example_copy": 0, "sentence": 0, "cut_off": 0, "unclassified": 0}
