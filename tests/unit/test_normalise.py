import pytest

from topictag.student.normalise import MAX_TOPIC_CHARS, MAX_TOPIC_WORDS, UNCLASSIFIED, normalise_topic, title_case


@pytest.mark.parametrize(
    ("raw", "topic"),
    [
        ("Anomaly Detection in Industrial Time Series", "Anomaly Detection in Industrial Time Series"),
        ("The topic is: graph neural networks for molecules.", "Graph Neural Networks for Molecules"),
        ('The topic of this paper is "Enhancing Medical Image Analysis with Deep Learning"',
         "Enhancing Medical Image Analysis with Deep Learning"),
        ("Topic: **Federated Learning**\nThis paper studies ...", "Federated Learning"),
        ("  \n\n'Reinforcement learning for robotics'  ", "Reinforcement Learning for Robotics"),
        ("Contrastive Principal Component Analysis (cPCA)", "Contrastive Principal Component Analysis (cPCA)"),
        ("LoRA fine-tuning of LLMs", "LoRA Fine-Tuning of LLMs"),
        ("SEMCLIP (Sentiment Analysis of Visual Clustering of Image Representation)", "SEMCLIP"),
        ("Learning Rate Schedules for the", "Learning Rate Schedules"),
        ("Robust Training of Deep Networks with Noisy Labels Using Sample Selection and", "Robust Training of Deep Networks with Noisy Labels using Sample Selection"),
        ("Of", "Of"),
        ("", UNCLASSIFIED),
        ('""', UNCLASSIFIED),
    ],
)
def test_normalise_topic(raw, topic):
    assert normalise_topic(raw) == topic


def test_topic_is_bounded_and_one_line():
    raw = "word " * 200 + "\nsecond line"
    topic = normalise_topic(raw)
    assert "\n" not in topic
    assert len(topic.split()) <= MAX_TOPIC_WORDS
    assert len(topic) <= MAX_TOPIC_CHARS


def test_long_single_word_is_cut():
    assert len(normalise_topic("x" * 500)) <= MAX_TOPIC_CHARS


def test_title_case_keeps_acronyms_and_small_words():
    assert title_case("deep learning for MRI reconstruction in 3D") == "Deep Learning for MRI Reconstruction in 3D"
    assert title_case("of mice and GANs") == "Of Mice and GANs"
