"""The tagging prompt: the same chat for every engine, the trainer and evaluation."""

from __future__ import annotations

from collections.abc import Callable

SYSTEM = (
    "You label machine learning research papers. Reply with the paper's topic only: "
    "a short noun phrase of 2 to 8 words in title case, with no sentence, quotes or explanation."
)

# Written for this prompt (not taken from any dataset): they show the length and style of a
# topic, which a 135M model does not pick up from the instruction alone. Five varied examples
# made the base model copy an example's topic far less often than three (measured on 150
# teacher-labelled abstracts: ROUGE-1 F 26.4 vs 23.6).
FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "Abstract: Clients in federated learning may leak their data through shared gradients. We add "
        "calibrated noise to client updates and prove a differential privacy guarantee, with little "
        "loss of accuracy on image and text tasks.",
        "Differential Privacy in Federated Learning",
    ),
    (
        "Abstract: Large language models often state false facts with confidence. We measure how well the "
        "probability a model assigns to its own answer predicts correctness, and propose a calibration "
        "method based on temperature scaling, halving the expected calibration error.",
        "Confidence Calibration of Large Language Models",
    ),
    (
        "Abstract: Sensors on factory machines produce long multivariate signals in which rare faults "
        "must be found without labels. We train a recurrent autoencoder on normal operation and flag "
        "windows with a high reconstruction error, improving recall on three production lines.",
        "Anomaly Detection in Industrial Time Series",
    ),
    (
        "Abstract: We study policy gradient methods for reinforcement learning with continuous actions and "
        "show that a natural gradient variant converges at a linear rate for linear quadratic regulators.",
        "Convergence of Policy Gradient Methods",
    ),
    (
        "Abstract: Predicting the properties of molecules is central to drug discovery. We introduce a "
        "message passing network that uses bond angles and pretrain it on unlabeled molecules; it "
        "sets a new state of the art on six property prediction benchmarks.",
        "Graph Neural Networks for Molecular Property Prediction",
    ),
)


def user_message(abstract: str, title: str = "") -> str:
    head = f"Title: {title}\n" if title else ""
    return f"{head}Abstract: {abstract}"


def build_messages(
    abstract: str,
    title: str = "",
    *,
    few_shot: bool = True,
    truncate: Callable[[str], str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one paper; ``truncate`` cuts the abstract to the engine's budget."""
    if truncate is not None:
        abstract = truncate(abstract)
    messages = [{"role": "system", "content": SYSTEM}]
    if few_shot:
        for example, topic in FEW_SHOT:
            messages.append({"role": "user", "content": example})
            messages.append({"role": "assistant", "content": topic})
    messages.append({"role": "user", "content": user_message(abstract.strip(), title.strip())})
    return messages
