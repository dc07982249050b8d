""".env.example lists every field of every settings class (regenerate it with
`.venv/bin/python -m tests.deploy.envfile > .env.example`)."""

from __future__ import annotations

import re

from tests.deploy.conftest import REPO
from tests.deploy.envfile import env_names, settings_classes


def test_lists_every_setting_and_nothing_else():
    listed = set(re.findall(r"^#? ?(TOPICTAG_\w+)=", (REPO / ".env.example").read_text(), re.M))
    expected = {name for cls in settings_classes() for name in env_names(cls)}
    hint = "regenerate: .venv/bin/python -m tests.deploy.envfile > .env.example"
    assert not expected - listed, f"missing {sorted(expected - listed)}; {hint}"
    assert not listed - expected, f"no such setting {sorted(listed - expected)}; {hint}"


def test_sets_no_topictag_setting():
    # Uncommented, a default would override the embedded setup for `make demo` too.
    text = (REPO / ".env.example").read_text()
    assert not re.findall(r"^TOPICTAG_", text, re.M)
    assert re.search(r"^POSTGRES_PASSWORD=$", text, re.M) and re.search(r"^REDIS_PASSWORD=$", text, re.M)
