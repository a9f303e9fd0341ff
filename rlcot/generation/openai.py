"""The server backend: budget-forced generation through a running server's ``/v1/completions``.

Any OpenAI-compatible server will do: ``vllm serve``, SGLang, ``transformers serve``,
a hosted endpoint. Same ``generate(requests, sampling, budget, progress) -> list[Trace]``
and the same per-sequence rules (``rlcot.generation.forcing``) as the hf and vllm
backends, so a trace means the same thing whichever produced it.

Rounds, exactly as ``rlcot.generation.vllm`` runs them in process: a server cannot
append a forced token to a running request or take tokens back, so every point where
budget forcing acts ends a request, and the sequence goes on as a new request whose
prompt is the prompt plus the completion so far (forced tokens included). A thinking
round asks for ``max_tokens`` = the cap minus the thinking so far, ``stop=[close_tag]``
and stops at EOS; an answer round asks for what is left of ``max_answer_tokens``.
Each round's tokens are replayed through ``ForcingRules`` one by one and anything the
server sampled past the point where a rule fired is dropped. vLLM and SGLang cache the
shared prefix, so a continuation prefills only what is new.

Each sequence runs its rounds on one worker thread and one server (least loaded when
it starts, so its continuations hit that server's prefix cache); ``max_in_flight``
threads bound the requests in flight over all ``base_urls``. A failed request (HTTP
429 or 5xx, a dropped or refused connection, a timeout) is retried with exponential
backoff (``Retry-After`` honoured), each retry on the next server; after ``retries``
retries the run stops with one line naming the URL and the status (``ServerError``).
Sweeps store rows as each chunk finishes, so a rerun resumes where it stopped.

Two dialects, detected once per generator with a one-token request (or fixed by
``token_ids="on"``/``"off"``):

- ``token ids`` (vLLM, SGLang): the prompt goes as a list of token ids, so nothing is
  ever re-tokenized; the completion's ids come back in ``token_ids``
  (``return_token_ids``; older vLLM: ``logprobs.tokens`` as ``"token_id:N"`` with
  ``return_tokens_as_token_ids``), the sampled tokens' logprobs in
  ``logprobs.token_logprobs``, and why a round stopped in ``stop_reason`` (vLLM) or
  ``matched_stop`` (SGLang): a string is the delimiter, an id or nothing with
  ``finish_reason == "stop"`` an EOS. ``include_stop_str_in_output`` (vLLM) and
  ``no_stop_trim`` (SGLang) keep the stop's tokens; each server ignores the other's field.
- ``text`` (``transformers serve``, which takes only a text prompt and returns only
  text): the prompt is the prompt text plus the decoded completion so far, and the
  completion's text is tokenized again here. Where the model's own tokens were not the
  tokenizer's canonical split of their text, or where the server's tokenization of
  the joined prompt merges tokens across a round boundary, the model sees other
  tokens than under the hf backend and the trace can go another way from there.
  Measured against the hf backend (greedy, SmolLM2-135M, 32 arith rows, cap 32,
  ``transformers serve``): 31 traces identical, 32 of 32 thinking sections identical;
  one answer differed after the cap, where the server's tokenization of prompt +
  thinking + forced delimiter and cue (the same length, other tokens) was not ours
  (``bench/openai_client.py`` part 3 measures it again). Forced spans are exact
  either way: forced tokens are ours, appended as ids.
  Without a stop reason, a thinking round that ended ``stop`` with the delimiter in its
  text stopped there, any other ``stop`` is an EOS; logprobs are kept only where the
  server's token strings spell the text in as many tokens as ours. The server tokenizes
  the text with its own special-token rules (a tokenizer that adds a BOS adds a second
  one to a chat template's): prefer a server that takes token ids.

Departures from the vllm backend: randomness is the server's (a request carries the
seed ``vllm._round_seed`` gives it, so a sample is reproducible on the same server and
version); logprobs are what the server reports (vLLM: start it with ``--logprobs-mode
processed_logprobs`` for hf's temperature-scaled ones); a text server samples with its
own defaults beyond temperature and top_p. The gold log-probability is not measured.
The context length is the ``max_model_len`` a server lists under ``/v1/models``
(vLLM, SGLang), else unknown. The API key comes from an environment variable and is
never written anywhere. Traces are keyed by the served model's name
(``served_fingerprint``), not by the URLs, so a sweep moved to other servers, or
scaled out to more, resumes instead of starting over; the run info records the URLs.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Sequence

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, ProgressCallback, SamplingConfig, Trace
from .forcing import ForcingRules, SequenceState, check_request, eos_ids
from .sweep import sweep_by_probing
from .vllm import _round_seed, _smallest

TOKEN_ID_MODES = ("auto", "on", "off")
SERVER_OPTIONS = ("token_ids", "timeout", "retries", "backoff")  # what a sweep spec's server_options may set
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRY_AFTER_MAX = 60.0  # seconds: a server asking for longer is treated as down
CONNECT_TIMEOUT = 10.0


class ServerError(ValueError):
    """A server that does not answer, or refuses a request: one line naming the URL and the status.

    A ``ValueError`` so every command reports it as one line, like any other setting
    that does not work (here a ``--base-url``); a rerun of a sweep resumes. ``status``
    is the HTTP status of the last try (None: no answer at all).
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Completion:
    """One round's answer, in our terms: the sampled ids and why the round stopped."""

    token_ids: list[int]
    logprobs: list[float | None]
    finish_reason: str
    eos_at_end: bool  # token_ids ends with the EOS the server stopped on
    exact: bool  # the ids are the server's own, not the text tokenized again here


@dataclass
class _Sequence(SequenceState):
    server: int = 0  # index into base_urls: every round of a sequence goes there first


class OpenAIGenerator:
    """Budget-forced generation through ``/v1/completions`` of the servers at ``base_urls``.

    ``model`` is the name the servers serve it under (sent with every request);
    ``tokenizer`` is the served model's, loaded here (``rlcot.models.load_tokenizer``, which
    also gives the ``generation_config`` naming its EOS ids where a local copy has one).
    """

    def __init__(self, model, base_urls: Sequence[str], protocol: ThinkingProtocol | None = None, tokenizer=None,
                 generation_config=None, api_key_env: str | None = None, max_in_flight: int = 64, token_ids: str = "auto",
                 timeout: float = 600.0, retries: int = 5, backoff: float = 0.5):
        if token_ids not in TOKEN_ID_MODES:
            raise ValueError(f"token_ids={token_ids!r} is not one of {', '.join(TOKEN_ID_MODES)}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight!r} must be a whole number >= 1, e.g. 64")
        self.model = str(model)
        self.protocol = protocol or ThinkingProtocol()
        if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
            raise TypeError("OpenAIGenerator needs a loaded tokenizer: rlcot.models.load_tokenizer(name_or_path)")
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids(self.tokenizer, generation_config)
        self.rules = ForcingRules(self.tokenizer, self.protocol, self.eos_ids)
        self.max_in_flight = max_in_flight
        # One thread at a time in the tokenizer: a fast tokenizer shared by threads can fail with "Already
        # borrowed" (huggingface/transformers#47085). The GIL serializes this work anyway; the HTTP waits overlap.
        self._tokenizing = threading.Lock()
        self.client = Client(base_urls, api_key(api_key_env), timeout=timeout, retries=retries, backoff=backoff)
        self.token_ids = {"on": True, "off": False}.get(token_ids)  # None: detect on the first generate
        self.max_model_len = self.client.max_model_len(self.model)

    # ------------------------------------------------------------------ public

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig, budget,
                 progress: ProgressCallback | None = None) -> list[Trace]:
        for request in requests:
            check_request(request, budget)
        sequences = [self.rules.start(i, request, budget.max_thinking_tokens, _Sequence)
                     for i, request in enumerate(requests)]
        if self.token_ids is None and sequences:
            self.token_ids = self._detect_token_ids(sequences[0].request)
        for seq in sequences:
            seq.server = self.client.pick()
        stop = threading.Event()  # set on the first failure: the other sequences end at their next round
        with ThreadPoolExecutor(max_workers=min(self.max_in_flight, max(len(sequences), 1))) as pool:
            futures = [pool.submit(self._run_sequence, seq, sampling, budget, stop) for seq in sequences]
            try:
                for future in as_completed(futures):
                    future.result()
                    if progress:
                        progress(1)
            except BaseException:
                stop.set()
                for future in futures:
                    future.cancel()
                raise
        return [self.rules.to_trace(seq) for seq in sequences]

    def sweep(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig, budget,
              budgets: Sequence[int], progress: ProgressCallback | None = None) -> dict[int, list[Trace]]:
        """A server cannot fork a running request: one run at the top cap, then a probe per budget."""
        return sweep_by_probing(self, requests, sampling, budget, budgets, progress)

    # ------------------------------------------------------------------ rounds

    def _run_sequence(self, seq: _Sequence, sampling: SamplingConfig, budget, stop: threading.Event) -> None:
        bound = sampling.max_tokens  # the whole completion, forced tokens included
        while seq.finish is None and not stop.is_set():
            with self._tokenizing:
                body = self._body(seq, sampling, budget)
            if body is None:  # no room: the context is full, or the completion at max_tokens
                seq.cut(bound)
                break
            choice = self.client.complete(seq.server, body)  # the wait, outside the lock
            with self._tokenizing:
                self._consume(seq, self._parse(choice, body), budget)
            if seq.finish is None and len(seq.ids) >= bound:
                seq.cut(bound)  # hf stops there, even inside forced tokens

    def _body(self, seq: _Sequence, sampling: SamplingConfig, budget) -> dict | None:
        """The next round's request for this sequence; None when it has no room left."""
        used = len(seq.request.prompt_ids) + len(seq.ids)
        room = _smallest(None if self.max_model_len is None else self.max_model_len - used,
                         sampling.max_tokens - len(seq.ids))
        if seq.thinking:
            cap = budget.max_thinking_tokens
            limit = _smallest(None if cap is None else cap - seq.thinking_tokens, room)
        else:
            limit = _smallest(budget.max_answer_tokens - seq.answer_tokens, room)
        if limit < 1:
            return None
        stop = [self.protocol.close_tag] if seq.thinking else []
        return self._request_body(seq.request, seq.ids, limit, stop, sampling, self.token_ids)

    def _request_body(self, request: GenerationRequest, ids: list[int], limit: int, stop: list[str],
                      sampling: SamplingConfig, token_ids: bool) -> dict:
        body = {"model": self.model, "max_tokens": limit, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "seed": _round_seed(request.seed, len(ids)), "logprobs": 1}
        if stop:
            body["stop"] = stop
        if token_ids:
            body.update(prompt=list(request.prompt_ids) + list(ids), return_token_ids=True,
                        return_tokens_as_token_ids=True, include_stop_str_in_output=True, no_stop_trim=True,
                        stop_token_ids=list(self.eos_ids))
        else:  # the special tokens of the prompt's chat template stay in its text; the server parses them
            body["prompt"] = request.prompt + self.tokenizer.decode(ids, skip_special_tokens=False)
        return body

    def _parse(self, choice: dict, body: dict) -> Completion:
        return parse_choice(choice, self.tokenizer, body.get("stop", []), self.eos_ids[0])

    def _consume(self, seq: _Sequence, completion: Completion, budget) -> None:
        """Replay one round's tokens through the forcing rules; drop what follows a rule firing."""
        ids = completion.token_ids
        for j, (token, logprob) in enumerate(zip(ids, completion.logprobs)):
            eos = token in self.rules.eos_ids or (completion.eos_at_end and j == len(ids) - 1)
            seq.append(token, logprob)
            if self.rules.advance(seq, budget, eos):
                return
        # The server's own ids: a "length" with no rule firing is the context running out. Text tokenized
        # again can count fewer tokens than the server sampled: go round again, as after a stop the
        # delimiter check does not see.
        if not ids or (completion.finish_reason == "length" and completion.exact):
            seq.finish = "length"

    def _detect_token_ids(self, request: GenerationRequest) -> bool:
        """True where the server takes a token-id prompt (and our extra fields), else False: one tiny request."""
        probe = GenerationRequest(prompt=request.prompt, prompt_ids=request.prompt_ids)
        try:
            self.client.complete(self.client.pick(), self._request_body(probe, [], 1, [], SamplingConfig(), True))
            return True
        except ServerError as err:
            if err.status not in (400, 404, 415, 422):  # refused as a request, not a server that is down
                raise
        # transformers serve: 400 "prompt must be a string", 422 for fields it does not know
        self.client.complete(self.client.pick(), self._request_body(probe, [], 1, [], SamplingConfig(), False))
        return False


# ------------------------------------------------------------------ parsing


def parse_choice(choice: dict, tokenizer, stop: Sequence[str], eos_id: int) -> Completion:
    """A ``choices[0]`` of vLLM, SGLang or a text-only server as the tokens it sampled.

    Token ids: ``token_ids``, else ``logprobs.tokens`` of the form ``"token_id:N"``,
    else the text tokenized here (``exact`` False). An EOS the server stopped on but
    left out (text-only servers, SGLang without ``no_stop_trim``) is put back, so the
    rules see it exactly as they would in process.
    """
    if not isinstance(choice, dict):
        raise ValueError(f"the server's choice is {type(choice).__name__}, not an object")
    text = choice.get("text") or ""
    finish = choice.get("finish_reason") or "length"  # unknown: go round again (text) or end (ids)
    reason = choice.get("stop_reason", choice.get("matched_stop"))
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    ids, exact = choice.get("token_ids"), True
    if ids is None and tokens and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        ids = [int(t.split(":", 1)[1]) for t in tokens]
    if ids is None:
        exact = False
        if isinstance(reason, str) and reason not in text:
            text += reason  # a server that trims the stop string it matched
        ids = tokenizer.encode(text, add_special_tokens=False)
        if not (len(tokens) == len(ids) and "".join(map(str, tokens)) == text):
            values = []  # the server's tokens are not ours: their logprobs cannot be placed
    ids = [int(token) for token in ids]
    # no stop reason (transformers serve): a round whose text holds the delimiter stopped there, not at an EOS
    by_string = isinstance(reason, str) or (reason is None and any(s in text for s in stop))
    eos = finish == "stop" and not by_string
    if eos and isinstance(reason, int) and not isinstance(reason, bool):
        if not ids or ids[-1] != reason:
            ids.append(reason)  # the stop token it matched, trimmed from the output
    elif eos and (not exact or not ids):
        ids.append(eos_id)  # a text server leaves the EOS out of its text
    # else (ids, stop_reason None): vLLM keeps the EOS it stopped on as the last id, as in process
    logprobs_out = [float(v) if isinstance(v, (int, float)) else None for v in values[: len(ids)]]
    logprobs_out += [None] * (len(ids) - len(logprobs_out))
    return Completion(ids, logprobs_out, finish, eos, exact)


# ------------------------------------------------------------------ HTTP


class Client:
    """``POST {base_url}/completions`` with retries, failover and a least-loaded pick among the servers."""

    RETRY_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx

    def __init__(self, base_urls: Sequence[str], key: str | None = None, timeout: float = 600.0,
                 retries: int = 5, backoff: float = 0.5):
        if isinstance(base_urls, str):
            base_urls = [base_urls]
        urls = [str(url).rstrip("/") for url in base_urls]
        if not urls:
            raise ValueError("no server to send requests to; pass --base-url http://HOST:PORT/v1 (repeatable)")
        bad = [url for url in urls if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"--base-url {bad[0]!r} is not an http(s) URL; e.g. --base-url http://localhost:8000/v1")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be a whole number >= 0")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (timeout, backoff))
        if not (numbers and timeout > 0 and backoff >= 0):
            raise ValueError(f"timeout={timeout!r} must be > 0 and backoff={backoff!r} >= 0 seconds")
        self.urls, self.timeout, self.retries, self.backoff = urls, float(timeout), retries, float(backoff)
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self._lock = threading.Lock()
        self._load = [0] * len(urls)  # requests in flight per server
        self._turn = 0
        self._local = threading.local()
        self.wait_s = 0.0  # seconds spent waiting on servers, summed over threads (bench/openai_client.py)
        self.requests = 0

    def pick(self) -> int:
        """The least-loaded server; ties go round the list."""
        with self._lock:
            self._turn += 1
            order = [(self._turn + i) % len(self.urls) for i in range(len(self.urls))]
            return min(order, key=lambda i: self._load[i])

    def claim(self, server: int) -> None:
        with self._lock:
            self._load[server] += 1

    def release(self, server: int) -> None:
        with self._lock:
            self._load[server] -= 1

    def complete(self, server: int, body: dict) -> dict:
        """``choices[0]`` of the completion; ``ServerError`` after the retries."""
        payload = self.post(server, "/completions", body)
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{self.urls[server]}/completions answered without choices ({str(payload)[:200]}); "
                              "is it an OpenAI-compatible /v1 endpoint?")
        return choices[0]

    def post(self, server: int, path: str, body: dict | None) -> dict:
        import requests

        failure = ""
        for attempt in range(self.retries + 1):
            index = (server + attempt) % len(self.urls)  # each retry on the next server
            url = self.urls[index] + path
            self.claim(index)
            began = time.perf_counter()
            try:
                session = self._session()
                response = (session.post(url, json=body, headers=self.headers, timeout=(CONNECT_TIMEOUT, self.timeout))
                            if body is not None else session.get(url, headers=self.headers, timeout=CONNECT_TIMEOUT))
                status, wait = response.status_code, _retry_after(response)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                status, wait, failure = None, None, f"{url}: {_connection_problem(err)}"
            finally:
                with self._lock:
                    self.wait_s += time.perf_counter() - began
                    self.requests += 1
                self.release(index)
            if status is not None and status < 400:
                return _json(response, url)
            if status is not None:
                failure = f"{url}: HTTP {status} ({_detail(response)})"
                if status < 500 and status not in self.RETRY_STATUSES:
                    raise ServerError(failure, status=status)
            if attempt < self.retries:
                time.sleep(wait if wait is not None else min(self.backoff * 2**attempt, 30.0))
        raise ServerError(f"{failure}, after {self.retries + 1} tries; check that the server is up, or pass the "
                          "--base-url of one that is (a rerun resumes)", status=status)

    def max_model_len(self, model: str) -> int | None:
        """The context length a server lists for ``model`` under ``/models`` (vLLM, SGLang), if any.

        Also says at once, before any row is generated, when a server cannot be reached.
        """
        found = None
        for server in range(len(self.urls)):
            try:
                listed = self.post(server, "/models", None)
            except ServerError as err:
                if err.status is None:
                    raise
                continue  # no model list here (transformers serve lists its cache): fine
            for entry in listed.get("data", []) if isinstance(listed, dict) else []:
                if isinstance(entry, dict) and entry.get("id") == model and isinstance(entry.get("max_model_len"), int):
                    found = min(found or entry["max_model_len"], entry["max_model_len"])
        return found

    def _session(self):
        import requests

        session = getattr(self._local, "session", None)
        if session is None:  # one per thread: requests does not promise a shared Session is thread-safe
            session = self._local.session = requests.Session()
        return session


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response.status_code in (429, 503) else None
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_MAX) if value is not None else None
    except ValueError:
        return None


def _detail(response) -> str:
    try:
        payload = response.json()
        detail = payload.get("detail") or payload.get("message") or payload.get("error") or payload
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
    except ValueError:
        detail = response.text
    return " ".join(str(detail).split())[:200] or response.reason or "no detail"


def _connection_problem(err) -> str:
    text = str(err)
    for known in ("Connection refused", "timed out", "Remote end closed", "Connection reset", "Name or service"):
        if known.lower() in text.lower():
            return known.lower() if known != "Remote end closed" else "connection dropped"
    return err.__class__.__name__


def _json(response, url: str) -> dict:
    try:
        return response.json()
    except ValueError:
        raise ServerError(f"{url}: answered {response.status_code} with no JSON ({response.text[:100]!r}); "
                          "is it an OpenAI-compatible /v1 endpoint?") from None


# ------------------------------------------------------------------ setup


def api_key(env: str | None) -> str | None:
    """The key in the environment variable ``env`` (default: ``OPENAI_API_KEY`` where set); never stored."""
    if env is None:
        return os.environ.get(DEFAULT_KEY_ENV) or None
    if not isinstance(env, str) or not env:
        raise ValueError(f"api_key_env={env!r} is not the name of an environment variable, e.g. OPENAI_API_KEY")
    if not os.environ.get(env):
        raise ValueError(f"the environment variable {env} (--api-key-env) is not set; export {env}=YOUR_KEY, "
                         "or leave out --api-key-env for a server without a key")
    return os.environ[env]


def served_fingerprint(model: str) -> str:
    """What keys a server's traces by: the served name, not the URLs, so a sweep resumes on other servers."""
    return f"openai:{model}"


__all__ = ["Client", "Completion", "OpenAIGenerator", "ServerError", "api_key", "parse_choice",
           "served_fingerprint"]
