"""The server backend against recorded responses and scripted servers on localhost.

The recorded responses (``tests/fixtures/openai/``) are written from the documented
response shapes of vLLM (``token_ids``, ``logprobs.tokens`` as ``"token_id:N"``,
``stop_reason``), SGLang (``token_ids``, ``matched_stop``, text pieces as logprob tokens)
and ``transformers serve`` (text only), over SmolLM2's real token ids. The scripted
servers are real HTTP servers (``http.server`` on a free port) whose "model" writes a
fixed script token by token, honouring ``max_tokens``, stop strings and EOS the way
each server does: the hf backend runs the same script (``tests/conftest.ScriptedLM``),
so their traces must agree. The real ``transformers serve`` is in
``test_openai_server.py``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rlcot.generation import Budget, get_generator
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.generation.openai import OpenAIGenerator, ServerError, parse_choice
from rlcot.generation.vllm import _round_seed
from tests.conftest import make_request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"
GREEDY = SamplingConfig()
EOS = 2  # SmolLM2's <|im_end|>
QUICK = dict(retries=3, backoff=0.01)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# ------------------------------------------------------------------ a scripted server


class FakeServer:
    """``/v1/models`` and ``/v1/completions`` on localhost; ``respond(body) -> (status, payload)``.

    A payload of None drops the connection without an answer. Every request is kept
    (path, body, headers), and the most requests seen in flight at once.
    """

    def __init__(self, respond, models: dict | None = None):
        self.respond, self.models = respond, models
        self.seen: list[tuple[str, dict | None, dict]] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.seen.append((self.path, None, dict(self.headers)))
                self._send(*((200, server.models) if server.models is not None else (404, {"detail": "Not Found"})))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.seen.append((self.path, body, dict(self.headers)))
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    status, payload = server.respond(body)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if payload is None:  # a dropped connection: no status line at all
                    self.close_connection = True
                    return
                self._send(status, payload)

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def completions(self) -> list[dict]:
        return [body for path, body, _ in self.seen if path == "/v1/completions"]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(respond, models=None) -> FakeServer:
        servers.append(FakeServer(respond, models))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def scripted_model(tokenizer, prompt_len: int, ids: list[int], dialect: str = "vllm", delay: float = 0.0):
    """A server whose model writes ``ids`` positionally (EOS past the end), as ``ScriptedLM`` does.

    ``vllm``: token-id prompts, ``token_ids`` and ``stop_reason`` back, stop tokens kept;
    ``sglang``: the same with ``matched_stop``; ``text``: like ``transformers serve``, a text
    prompt only (400 for a list, 422 for fields it does not know), text back with the stop
    string kept and the EOS left out.
    """
    known_text_fields = {"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "logprobs"}

    def respond(body):
        time.sleep(delay)
        if dialect == "text":
            if not isinstance(body["prompt"], str):
                return 400, {"detail": "prompt must be a string."}
            if set(body) - known_text_fields:
                return 422, {"detail": f"Unexpected fields in the request: {set(body) - known_text_fields}"}
            prompt_ids = tokenizer.encode(body["prompt"], add_special_tokens=False)
        else:
            prompt_ids = body["prompt"]
        start = len(prompt_ids) - prompt_len
        out, finish, reason = [], "length", None
        for k in range(start, start + body["max_tokens"]):
            out.append(ids[k] if k < len(ids) else EOS)
            if out[-1] == EOS:
                finish = "stop"
                break
            hits = [s for s in body.get("stop", []) if s in tokenizer.decode(out)]
            if hits:
                finish, reason = "stop", hits[0]
                break
        text = tokenizer.decode(out, skip_special_tokens=True)
        if dialect == "text":
            return 200, {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
        choice = {"index": 0, "text": text, "finish_reason": finish, "token_ids": out,
                  "logprobs": {"tokens": [f"token_id:{t}" for t in out], "token_logprobs": [-0.5] * len(out)}}
        if dialect == "sglang":  # SGLang names the EOS it matched; vLLM leaves an EOS's stop_reason empty
            choice["matched_stop"] = EOS if out[-1] == EOS else reason
        else:
            choice["stop_reason"] = reason
        return 200, {"choices": [choice]}

    return respond


def generator(tokenizer, protocol, urls, **options) -> OpenAIGenerator:
    return OpenAIGenerator("scripted", urls if isinstance(urls, list) else [urls], protocol, tokenizer,
                           **{**QUICK, **options})


# ------------------------------------------------------------------ recorded responses


def test_recorded_vllm_round_gives_its_token_ids_logprobs_and_a_delimiter_stop(tokenizer):
    choice = recorded("vllm_close")["choices"][0]
    got = parse_choice(choice, tokenizer, ["</think>"], EOS)
    assert got.token_ids == choice["token_ids"] and got.exact
    assert got.logprobs == choice["logprobs"]["token_logprobs"]
    assert not got.eos_at_end and got.finish_reason == "stop"
    assert tokenizer.decode(got.token_ids).endswith("</think>")


def test_recorded_vllm_eos_stays_the_last_id_and_marks_the_end(tokenizer):
    choice = recorded("vllm_eos")["choices"][0]
    got = parse_choice(choice, tokenizer, [], EOS)
    assert got.token_ids == choice["token_ids"] and got.token_ids[-1] == EOS and got.eos_at_end


def test_recorded_older_vllm_gives_ids_through_token_id_strings(tokenizer):
    choice = recorded("vllm_logprob_ids")["choices"][0]
    got = parse_choice(choice, tokenizer, ["</think>"], EOS)
    assert got.token_ids == [int(t.split(":")[1]) for t in choice["logprobs"]["tokens"]] and got.exact
    assert got.finish_reason == "length" and not got.eos_at_end
    assert got.logprobs == choice["logprobs"]["token_logprobs"]


def test_recorded_sglang_matched_stop_is_read_and_a_trimmed_eos_put_back(tokenizer):
    close = parse_choice(recorded("sglang_close")["choices"][0], tokenizer, ["</think>"], EOS)
    assert not close.eos_at_end and tokenizer.decode(close.token_ids).endswith("</think>")
    choice = recorded("sglang_trimmed_eos")["choices"][0]
    got = parse_choice(choice, tokenizer, [], EOS)
    assert got.token_ids == choice["token_ids"] + [EOS] and got.eos_at_end
    assert got.logprobs == choice["logprobs"]["token_logprobs"] + [None]


def test_recorded_text_only_answers_are_tokenized_again_and_eos_told_from_the_delimiter(tokenizer):
    eos = parse_choice(recorded("transformers_eos")["choices"][0], tokenizer, [], EOS)
    assert eos.token_ids == tokenizer.encode("5}.", add_special_tokens=False) + [EOS]
    assert eos.eos_at_end and not eos.exact and eos.logprobs == [None] * len(eos.token_ids)
    close = parse_choice(recorded("transformers_close")["choices"][0], tokenizer, ["</think>"], EOS)
    assert not close.eos_at_end and tokenizer.decode(close.token_ids).endswith("</think>")


def test_recorded_error_bodies_become_one_line_naming_the_url_status_and_message(serve, tokenizer, protocol):
    errors = recorded("errors")
    server = serve(lambda body: (400, errors["vllm_400"]))
    gen = generator(tokenizer, protocol, server.url, token_ids="on")
    with pytest.raises(ServerError) as caught:
        gen.generate([make_request(tokenizer, protocol)], GREEDY, Budget(max_thinking_tokens=8))
    message = str(caught.value)
    assert "\n" not in message and server.url in message and "HTTP 400" in message
    assert "maximum context length is 2048" in message
    assert len(server.completions()) == 1  # a refused request is not retried


# ------------------------------------------------------------------ traces agree with hf

CASES = {  # name: (completion the model writes, budget)
    "closed": ("Two and three make five.\n</think>\n\nThe answer is \\boxed{5}.", Budget(max_thinking_tokens=64)),
    "capped": ("Let me count them all one by one, slowly and with care, before I answer", Budget(max_thinking_tokens=9,
                                                                                              max_answer_tokens=6)),
    "eos": ("Five.", Budget(max_thinking_tokens=32, max_answer_tokens=6)),
    "extended": ("Five.\n</think>\n\n\\boxed{5}", Budget(max_thinking_tokens=24, min_thinking_tokens=12,
                                                        max_answer_tokens=8)),
}


@pytest.mark.parametrize("dialect", ["vllm", "sglang", "text"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_traces_match_the_hf_backend_on_the_same_scripted_model(case, dialect, serve, scripted, tokenizer, protocol):
    text, budget = CASES[case]
    model, request = scripted(text)
    expected = HFGenerator(model, tokenizer, protocol).generate([request], GREEDY, budget)[0]
    ids = tokenizer.encode(text, add_special_tokens=False)
    server = serve(scripted_model(tokenizer, len(request.prompt_ids), ids, dialect))
    got = generator(tokenizer, protocol, server.url).generate([request], GREEDY, budget)[0]
    for name in ("completion", "completion_ids", "forced", "thinking_tokens", "answer_tokens", "finish_reason",
                 "capped", "extensions", "thinking_end"):
        assert getattr(got, name) == getattr(expected, name), name
    sampled = [lp for lp, forced in zip(got.logprobs, got.forced) if not forced]
    assert sampled == ([-0.5] * len(sampled) if dialect != "text" else [None] * len(sampled))


def test_rounds_ask_for_the_cap_left_stop_at_the_delimiter_and_carry_their_own_seed(serve, tokenizer, protocol):
    text = "Count: one two three four five six seven eight nine ten eleven twelve"
    ids = tokenizer.encode(text, add_special_tokens=False)
    request = make_request(tokenizer, protocol, seed=77)
    server = serve(scripted_model(tokenizer, len(request.prompt_ids), ids))
    gen = generator(tokenizer, protocol, server.url, token_ids="on")
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=6, max_answer_tokens=3))[0]
    thinking, answer = server.completions()
    assert thinking["prompt"] == request.prompt_ids and thinking["max_tokens"] == 6
    assert thinking["stop"] == ["</think>"] and thinking["stop_token_ids"] == [EOS] and thinking["seed"] == 77
    continued = len(answer["prompt"]) - len(request.prompt_ids)
    assert answer["prompt"] == request.prompt_ids + trace.completion_ids[:continued]
    assert answer["max_tokens"] == 3 and "stop" not in answer
    assert answer["seed"] == _round_seed(77, continued) != 77


def test_a_text_only_server_is_detected_once_and_then_gets_text_prompts(serve, tokenizer, protocol):
    ids = tokenizer.encode("Five.\n</think>\n\n5}", add_special_tokens=False)
    requests = [make_request(tokenizer, protocol, rid=i) for i in range(3)]
    server = serve(scripted_model(tokenizer, len(requests[0].prompt_ids), ids, "text"))
    gen = generator(tokenizer, protocol, server.url)
    gen.generate(requests, GREEDY, Budget(max_thinking_tokens=16, max_answer_tokens=8))
    gen.generate(requests[:1], GREEDY, Budget(max_thinking_tokens=16, max_answer_tokens=8))
    bodies = server.completions()
    assert gen.token_ids is False
    assert isinstance(bodies[0]["prompt"], list) and all(isinstance(b["prompt"], str) for b in bodies[1:])
    assert bodies[1]["prompt"] == requests[0].prompt and bodies[1]["max_tokens"] == 1  # the probe, then real rounds


# ------------------------------------------------------------------ retries, bounds, keys, several servers


def flaky(respond, failures: list):
    """``respond``, after answering with each of ``failures`` once (a status, or None: drop the connection)."""
    left = list(failures)
    lock = threading.Lock()

    def answer(body):
        with lock:
            failure = left.pop(0) if left else False
        if failure is False:
            return respond(body)
        return (failure, {"detail": "busy"}) if failure else (0, None)

    return answer


def test_429_503_and_a_dropped_connection_are_retried_until_an_answer(serve, tokenizer, protocol):
    request = make_request(tokenizer, protocol)
    ids = tokenizer.encode("Five.\n</think>\n\n5}", add_special_tokens=False)
    server = serve(flaky(scripted_model(tokenizer, len(request.prompt_ids), ids), [429, 503, None]))
    trace = generator(tokenizer, protocol, server.url, token_ids="on").generate(
        [request], GREEDY, Budget(max_thinking_tokens=16, max_answer_tokens=8))[0]
    assert trace.finish_reason == "closed" and len(server.completions()) == 3 + 2  # three failures, two rounds


def test_a_server_that_stays_down_stops_the_run_with_one_line_after_the_retries(serve, tokenizer, protocol):
    server = serve(lambda body: (503, {"detail": "overloaded"}))
    gen = generator(tokenizer, protocol, server.url, token_ids="on", retries=2)
    requests = [make_request(tokenizer, protocol, rid=i) for i in range(4)]
    with pytest.raises(ServerError) as caught:
        gen.generate(requests, GREEDY, Budget(max_thinking_tokens=8), progress=lambda k: None)
    message = str(caught.value)
    assert "\n" not in message and f"{server.url}/completions: HTTP 503 (overloaded), after 3 tries" in message
    assert len(server.completions()) <= 3 * len(requests)


def test_an_unreachable_server_is_named_before_any_row_is_generated(serve, tokenizer, protocol):
    server = serve(lambda body: (200, {}))
    url = server.url
    server.close()
    with pytest.raises(ServerError, match=f"{url}/models: connection refused, after 2 tries"):
        generator(tokenizer, protocol, url, retries=1)


def test_requests_in_flight_never_exceed_max_in_flight(serve, tokenizer, protocol):
    requests = [make_request(tokenizer, protocol, rid=i) for i in range(12)]
    ids = tokenizer.encode("Five.\n</think>\n\n5}", add_special_tokens=False)
    server = serve(scripted_model(tokenizer, len(requests[0].prompt_ids), ids, delay=0.03))
    done = []
    traces = generator(tokenizer, protocol, server.url, token_ids="on", max_in_flight=3).generate(
        requests, GREEDY, Budget(max_thinking_tokens=16, max_answer_tokens=8), progress=done.append)
    assert server.most_in_flight == 3 and sum(done) == 12
    assert [t.request_id for t in traces] == list(range(12)) and {t.finish_reason for t in traces} == {"closed"}


def test_the_api_key_comes_from_its_variable_and_goes_only_in_the_header(serve, tokenizer, protocol, monkeypatch):
    server = serve(scripted_model(tokenizer, 0, []), models={"data": [{"id": "scripted", "max_model_len": 4096}]})
    monkeypatch.setenv("MY_SERVER_KEY", "sk-test-123")
    gen = generator(tokenizer, protocol, server.url, api_key_env="MY_SERVER_KEY")
    assert gen.max_model_len == 4096
    assert all(headers["Authorization"] == "Bearer sk-test-123" for _, _, headers in server.seen)
    monkeypatch.delenv("MY_SERVER_KEY")
    with pytest.raises(ValueError, match="MY_SERVER_KEY .* is not set"):
        generator(tokenizer, protocol, server.url, api_key_env="MY_SERVER_KEY")


def test_several_servers_share_the_sequences_and_each_sequence_keeps_to_one(serve, tokenizer, protocol):
    requests = [make_request(tokenizer, protocol, rid=i, seed=i) for i in range(8)]
    prompt_len = len(requests[0].prompt_ids)
    ids = tokenizer.encode("Let me think about it for a while now", add_special_tokens=False)
    servers = [serve(scripted_model(tokenizer, prompt_len, ids)) for _ in range(2)]
    gen = generator(tokenizer, protocol, [s.url for s in servers], token_ids="on", max_in_flight=4)
    gen.generate(requests, GREEDY, Budget(max_thinking_tokens=4, max_answer_tokens=2))
    firsts = [{body["seed"] for body in s.completions() if body["max_tokens"] == 4} for s in servers]
    assert [len(seeds) for seeds in firsts] == [4, 4] and not firsts[0] & firsts[1]  # 4 sequences each
    for server, seeds in zip(servers, firsts):  # every continuation went where its sequence's first round did
        answers = [body for body in server.completions() if body["max_tokens"] == 2]
        offset = len(answers[0]["prompt"]) - prompt_len  # every sequence capped at 4, then delimiter and cue
        assert {body["seed"] for body in answers} == {_round_seed(i, offset) for i in seeds}


def test_get_generator_builds_the_server_backend_with_its_options(serve, tokenizer, protocol):
    server = serve(scripted_model(tokenizer, 0, []))
    gen = get_generator("openai", "scripted", tokenizer, protocol, base_urls=[server.url], max_in_flight=5)
    assert isinstance(gen, OpenAIGenerator) and gen.max_in_flight == 5 and gen.protocol is protocol


@pytest.mark.parametrize("options, message", [
    (dict(base_urls=[]), "pass --base-url"),
    (dict(base_urls=["localhost:8000/v1"]), "is not an http"),
    (dict(base_urls=["http://x/v1"], token_ids="maybe"), "token_ids='maybe'"),
    (dict(base_urls=["http://x/v1"], max_in_flight=0), "max_in_flight=0"),
])
def test_bad_options_are_one_line_value_errors(options, message, tokenizer, protocol):
    with pytest.raises(ValueError, match=message):
        OpenAIGenerator("scripted", protocol=protocol, tokenizer=tokenizer, **options)


# ------------------------------------------------------------------ the commands


def test_generate_through_a_server_records_the_urls_and_never_the_key(serve, tokenizer, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rlcot.builtin_models import ensure_builtin_cached
    from rlcot.cli import app

    model_dir = str(ensure_builtin_cached("smollm2-135m"))  # the tokenizer's source; the server is scripted
    server = serve(lambda body: (200, {"choices": [{"index": 0, "text": "", "token_ids": [EOS],
                                                     "finish_reason": "stop", "stop_reason": None}]}))
    monkeypatch.setenv("RLCOT_TEST_KEY", "sk-secret-777")
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--out", str(out), "--backend", "openai", "--base-url", server.url, "--model", model_dir,
            "--api-key-env", "RLCOT_TEST_KEY", "--n", "2", "--budget", "4", "--max-answer-tokens", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(stored) == 2 and {row["backend"] for row in stored} == {"openai"}
    assert {row["weights"] for row in stored} == {f"openai:{model_dir}"}
    info = json.loads(out.with_name(out.name + ".run.json").read_text())
    assert info["servers"] == {"base_urls": [server.url], "api_key_env": "RLCOT_TEST_KEY"}
    assert "sk-secret-777" not in out.read_text() + json.dumps(info)
    assert all(headers.get("Authorization") == "Bearer sk-secret-777" for _, _, headers in server.seen)


@pytest.mark.parametrize("fields, message", [
    (dict(backend="openai"), "needs the server: --base-url"),
    (dict(backend="hf", base_urls=("http://x/v1",)), "only applies to --backend openai"),
    (dict(backend="openai", base_urls=("http://x/v1",), max_in_flight=0), "max_in_flight=0 must be >= 1"),
    (dict(backend="openai", base_urls=("http://x/v1",), server_options={"retriez": 1}), "'retriez' is not one of"),
])
def test_a_sweep_spec_checks_its_server_fields(fields, message):
    from rlcot.evals.sweep_spec import SweepSpec

    with pytest.raises(ValueError, match=message):
        SweepSpec(**fields)


def test_a_sweep_spec_reads_one_url_or_several_from_yaml_values():
    from rlcot.evals.sweep_spec import SweepSpec

    one = SweepSpec.from_mapping({"backend": "openai", "base_urls": "http://a:8000/v1"})
    two = SweepSpec.from_mapping({"backend": "openai", "base_urls": ["http://a:8000/v1", "http://b:8000/v1"]})
    assert one.base_urls == ("http://a:8000/v1",) and len(two.base_urls) == 2
