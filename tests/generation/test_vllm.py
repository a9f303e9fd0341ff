"""The vLLM backend, against a stand-in ``vllm`` module (vLLM needs a GPU; none here).

The stand-in ``LLM`` honours what the backend relies on — ``max_tokens``, stop
strings (cut like vLLM: the stop string's tokens kept, as with
``include_stop_str_in_output``), ``stop_token_ids`` and EOS — and returns outputs
shaped like vLLM's ``RequestOutput``/``CompletionOutput``. What it writes comes from
a script; the tokenizer is SmolLM2's, so token boundaries are real ones.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pytest
import torch
from transformers import PretrainedConfig

from rlcot.generation.budget import Budget, answer_complete
from rlcot.generation import get_generator
from rlcot.generation.base import GenerationRequest, SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.generation.vllm import VLLMGenerator, _round_seed
from rlcot.builtin_models import ensure_builtin_cached
from rlcot.thinking import ThinkingProtocol

PROTOCOL = ThinkingProtocol()
CUE = "The final answer is \\boxed{"
GREEDY = SamplingConfig()
WIDE = 10_000  # a SamplingConfig.max_tokens that never binds here


@pytest.fixture(scope="module")
def model_dir():
    return ensure_builtin_cached("smollm2-135m")


@pytest.fixture(scope="module")
def tok(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


# ----------------------------------------------------------- the stand-in vllm


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class SamplingParams:
    def __init__(self, **fields):
        self.__dict__.update(dict(stop=None, stop_token_ids=None, max_tokens=16, logprobs=None, seed=None))
        self.__dict__.update(fields)


def TokensPrompt(**fields):  # vLLM's TokensPrompt is a TypedDict
    return dict(fields)


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str
    stop_reason: int | str | None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


class ScriptedLLM:
    """A stand-in ``vllm.LLM`` whose model continues ``script(input_ids)``.

    ``documents``: the model writes a fixed document after each registered prefix
    (``write``), continues it from wherever a round stopped inside it, and ends its
    turn (EOS) after it.
    ``positional``: like the hf tests' scripted model, the completion token at index
    k is ``script[k]`` whatever came before (EOS past the end), so the hf backend
    can run the same model.
    """

    def __init__(self, tokenizer, max_model_len: int = 8192):
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token_id
        self.documents: dict[tuple[int, ...], list[int]] = {}
        self.positional: tuple[int, list[int]] | None = None  # (prompt length, script)
        self.calls: list[tuple[list[dict], list[SamplingParams], bool]] = []
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=max_model_len))

    def write(self, prefix: list[int], document: list[int]) -> None:
        self.documents[tuple(prefix)] = list(document)

    def logprob_at(self, position: int) -> float:
        return 0.0 if self.positional else -0.001 * (position + 1)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params, use_tqdm))
        return [self._one(str(i), p["prompt_token_ids"], sp) for i, (p, sp) in enumerate(zip(prompts, params))]

    def _continuation(self, ids: list[int]) -> list[int]:
        if self.positional:
            start, script = self.positional
            return [script[k] if k < len(script) else self.eos for k in range(len(ids) - start, len(ids) + 64)]
        for cut in range(len(ids), -1, -1):
            document = self.documents.get(tuple(ids[:cut]))
            if document is not None and document[: len(ids) - cut] == ids[cut:]:
                return document[len(ids) - cut :] + [self.eos]  # past its document the model ends its turn
        raise AssertionError(f"nothing scripted after {self.tokenizer.decode(ids[-12:])!r}")

    def _one(self, request_id: str, ids: list[int], sp: SamplingParams) -> RequestOutput:
        assert sp.max_tokens is None or sp.max_tokens >= 1, "vLLM rejects max_tokens < 1"
        limit = sp.max_tokens or self.llm_engine.model_config.max_model_len - len(ids)
        out, text, finish, reason = [], "", "length", None
        for token in self._continuation(ids):
            out.append(token)
            text = self.tokenizer.decode(out, skip_special_tokens=sp.skip_special_tokens)
            if token == self.eos or token in (sp.stop_token_ids or []):
                finish, reason = "stop", None if token == self.eos else token
                break
            hits = [s for s in sp.stop or [] if s in text]
            if hits:  # vLLM cuts the text after the stop string but keeps every token
                finish, reason = "stop", hits[0]
                text = text[: text.index(hits[0]) + len(hits[0])]
                break
            if len(out) == limit:
                break
        else:
            raise AssertionError("the script ran out before the request stopped")
        logprobs = [{t: Logprob(self.logprob_at(len(ids) + k))} for k, t in enumerate(out)]
        completion = CompletionOutput(0, text, out, None, logprobs if sp.logprobs is not None else None, finish, reason)
        return RequestOutput(request_id, list(ids), [completion])


def make_stub(tokenizer):
    module = types.ModuleType("vllm")
    module.built = []

    class LLM(ScriptedLLM):
        def __init__(self, **kwargs):
            module.built.append(kwargs)
            super().__init__(tokenizer)

    module.LLM, module.SamplingParams, module.TokensPrompt = LLM, SamplingParams, TokensPrompt
    module.RequestOutput, module.CompletionOutput, module.Logprob = RequestOutput, CompletionOutput, Logprob
    return module


@pytest.fixture
def stub(monkeypatch, tok):
    module = make_stub(tok)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture
def llm(stub, tok):
    return ScriptedLLM(tok)


@pytest.fixture
def gen(llm, model_dir):
    return VLLMGenerator(model_dir, llm=llm)


def enc(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def make_request(tok, question="What is 2+2?", **fields) -> GenerationRequest:
    prompt = PROTOCOL.build_prompt(tok, question)
    return GenerationRequest(prompt=prompt, prompt_ids=enc(tok, prompt), answer_cue=CUE, **fields)


def forced_ids(tok) -> list[int]:
    return enc(tok, PROTOCOL.forced_close) + enc(tok, CUE)


def through_close(tok, text: str) -> list[int]:
    """The tokens of ``text`` up to and including the one that completes the delimiter."""
    ids = enc(tok, text)
    return next(ids[: k + 1] for k in range(len(ids)) if PROTOCOL.close_tag in tok.decode(ids[: k + 1]))


# ------------------------------------------------------------- requests


def test_first_round_sends_prompt_ids_and_budget_as_sampling_params(gen, llm, tok):
    request = make_request(tok, seed=7)
    thinking = enc(tok, "Two and two make four, so the sum is four indeed.")
    llm.write(request.prompt_ids, thinking)
    llm.write(request.prompt_ids + thinking[:5] + forced_ids(tok), enc(tok, "4 and so on"))
    sampling = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=WIDE)
    trace = gen.generate([request], sampling, Budget(max_thinking_tokens=5, max_answer_tokens=3))[0]
    (prompts, params, use_tqdm), (answer_prompts, answer_params, _) = llm.calls
    assert prompts == [{"prompt_token_ids": request.prompt_ids}] and use_tqdm is False
    p = params[0]
    assert (p.seed, p.temperature, p.top_p, p.max_tokens) == (7, 0.7, 0.9, 5)
    assert p.stop == ["</think>"] and p.include_stop_str_in_output and p.stop_token_ids == [tok.eos_token_id]
    assert p.logprobs == 0 and p.skip_special_tokens
    # the answer round continues from the completion so far, forced tokens included
    assert answer_prompts[0]["prompt_token_ids"] == request.prompt_ids + trace.completion_ids[:-3]
    a = answer_params[0]
    assert a.max_tokens == 3 and a.stop == [] and a.seed == _round_seed(7, 5 + len(forced_ids(tok)))


def test_continuation_rounds_get_their_own_seed_and_the_first_keeps_the_request_seed():
    assert _round_seed(7, 0) == 7
    assert len({_round_seed(7, 10), _round_seed(7, 11), _round_seed(8, 10)}) == 3


# ---------------------------------------------------------- thinking ends


def test_model_closing_its_thinking_gives_a_closed_trace_with_its_own_answer(gen, llm, tok):
    request = make_request(tok)
    text = "2+2 is 4.\n</think>\n\nThe answer is \\boxed{4}. Done"
    llm.write(request.prompt_ids, enc(tok, text) + [tok.eos_token_id])
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=50))[0]
    thinking = through_close(tok, text)
    assert trace.finish_reason == "closed" and not trace.capped and trace.extensions == 0
    assert trace.thinking.strip() == "2+2 is 4." and trace.answer == "\n\nThe answer is \\boxed{4}. Done"
    assert trace.thinking_end == trace.thinking_tokens == len(thinking)
    assert trace.completion_ids == enc(tok, text) + [tok.eos_token_id]
    assert trace.answer_tokens == len(trace.completion_ids) - len(thinking) and not any(trace.forced)
    start = len(request.prompt_ids)
    assert trace.logprobs == [llm.logprob_at(start + k) for k in range(len(trace.completion_ids))]
    assert len(llm.calls) == 2  # the stop string ended the thinking round at the delimiter


def test_cap_forces_delimiter_and_cue_and_counts_exactly_cap_thinking_tokens(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Let me add two and two carefully, step by step, to be sure.")
    llm.write(request.prompt_ids, thinking)
    llm.write(request.prompt_ids + thinking[:6] + forced_ids(tok), enc(tok, "4} because 2+2=4."))
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=6))[0]
    n_forced = len(forced_ids(tok))
    assert trace.finish_reason == "capped" and trace.capped and trace.budget == 6
    assert trace.thinking_tokens == 6 and trace.completion_ids[:6] == thinking[:6]
    assert trace.forced == [False] * 6 + [True] * n_forced + [False] * 2
    assert [lp is None for lp in trace.logprobs] == trace.forced
    assert tok.decode(trace.completion_ids[6 : 6 + n_forced]) == PROTOCOL.forced_close + CUE
    assert trace.thinking_end == 6 + enc(tok, PROTOCOL.forced_close).__len__()
    assert trace.answer == "\n\n" + CUE + "4}" and trace.answer_tokens == 2


def test_eos_inside_thinking_is_taken_back_and_the_answer_forced(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "I think it is 4.")
    llm.write(request.prompt_ids, thinking + [tok.eos_token_id])
    llm.write(request.prompt_ids + thinking + forced_ids(tok), enc(tok, "4}.") + [tok.eos_token_id])
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=50))[0]
    assert trace.finish_reason == "eos" and not trace.capped
    assert tok.eos_token_id not in trace.completion_ids[: trace.thinking_end]
    assert trace.thinking_tokens == len(thinking) and trace.thinking.strip() == "I think it is 4."
    assert trace.forced == [False] * len(thinking) + [True] * len(forced_ids(tok)) + [False] * 2
    assert trace.answer.endswith(CUE + "4}.")  # '}.' is one token: the answer ends after it


def test_eos_inside_thinking_ends_the_trace_without_answer_when_answer_after_eos_is_off(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "I think it is 4.") + [tok.eos_token_id]
    llm.write(request.prompt_ids, thinking)
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=50, answer_after_eos=False))[0]
    assert trace.finish_reason == "eos" and trace.answer is None and len(llm.calls) == 1
    assert trace.completion_ids == thinking and trace.thinking_end == len(thinking)
    assert trace.thinking_tokens == len(thinking) and trace.answer_tokens == 0


def test_early_close_is_taken_back_and_wait_forced_as_hf_does(gen, llm, tok):
    """The delimiter begins inside ' </' and ends inside '>.': the space stays, the '.' goes."""
    request = make_request(tok)
    four = enc(tok, "Four")
    early = four + [22577, 17400, 19369]  # "Four" " </" "think" ">."
    assert tok.decode(early) == "Four </think>."
    llm.write(request.prompt_ids, early + enc(tok, " unused"))
    wait = enc(tok, " Wait")
    later = ", 2+2=4 indeed.\n</think>\n\nThe answer is 4."
    llm.write(request.prompt_ids + four + wait, enc(tok, later) + [tok.eos_token_id])
    budget = Budget(max_thinking_tokens=50, min_thinking_tokens=6, max_extensions=3)
    trace = gen.generate([request], GREEDY, budget)[0]
    thought = through_close(tok, later)
    assert trace.extensions == 1 and trace.finish_reason == "closed"
    assert trace.thinking.strip() == "Four Wait, 2+2=4 indeed."
    assert trace.completion_ids[: trace.thinking_end] == four + wait + thought
    assert trace.forced[: trace.thinking_end] == [False] * len(four) + [True] * len(wait) + [False] * len(thought)
    assert trace.thinking_tokens == len(four) + len(thought) >= budget.min_thinking_tokens


def test_early_close_with_no_extensions_left_is_an_ordinary_close(gen, llm, tok):
    request = make_request(tok)
    text = "Four</think> 4"
    llm.write(request.prompt_ids, enc(tok, text) + [tok.eos_token_id])
    budget = Budget(max_thinking_tokens=50, min_thinking_tokens=30, max_extensions=0)
    trace = gen.generate([request], GREEDY, budget)[0]
    assert trace.extensions == 0 and trace.finish_reason == "closed" and trace.answer == " 4"


def test_delimiter_completed_across_a_round_boundary_is_caught_and_what_followed_dropped(gen, llm, tok):
    """vLLM's stop string only sees new text, so '>' after resumed '</think' does not stop it."""
    request = make_request(tok)
    text = "So 4.</think>\n\nThe answer is 4."
    ids = enc(tok, text)
    head = ids[: len(through_close(tok, text)) - 1]  # "So 4.</think"
    llm.write(request.prompt_ids, ids + [tok.eos_token_id])
    resumed = replace(request, resume_ids=head)
    trace = gen.generate([resumed], GREEDY, Budget(max_thinking_tokens=20))[0]
    assert trace.finish_reason == "closed" and trace.thinking_tokens == len(head) + 1
    assert trace.answer == "\n\nThe answer is 4." and trace.completion_ids == ids + [tok.eos_token_id]
    (first,) = llm.calls[0][0]
    assert first["prompt_token_ids"] == request.prompt_ids + head


# ------------------------------------------------------------------ answers


def test_forced_answer_stops_where_the_braces_balance_as_hf_does(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Half of one is one half, clearly.")
    llm.write(request.prompt_ids, thinking)
    answer = enc(tok, "\\frac{1}{2}} and then more text")
    llm.write(request.prompt_ids + thinking[:4] + forced_ids(tok), answer)
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=4, max_answer_tokens=20))[0]
    kept = trace.completion_ids[trace.thinking_end :]
    assert trace.answer.endswith(CUE + "\\frac{1}{2}}") and trace.finish_reason == "capped"
    assert answer_complete(tok.decode(kept), CUE) and not answer_complete(tok.decode(kept[:-1]), CUE)
    assert trace.answer_tokens == len(enc(tok, "\\frac{1}{2}}"))


def test_answer_reaching_max_answer_tokens_finishes_with_length(gen, llm, tok):
    request = make_request(tok)
    text = "Easy.</think> The answer is four, as anyone can see."
    llm.write(request.prompt_ids, enc(tok, text))
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=50, max_answer_tokens=3))[0]
    assert trace.finish_reason == "length" and trace.answer_tokens == 3 and not trace.capped
    assert trace.answer == " The answer is"


def test_capped_answer_that_never_balances_finishes_with_length_and_stays_capped(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Let me think about this for a while longer.")
    llm.write(request.prompt_ids, thinking)
    llm.write(request.prompt_ids + thinking[:3] + forced_ids(tok), enc(tok, "four and more words"))
    trace = gen.generate([request], GREEDY, Budget(max_thinking_tokens=3, max_answer_tokens=2))[0]
    assert trace.finish_reason == "length" and trace.capped and trace.answer_tokens == 2


def test_max_tokens_bounds_the_whole_completion_even_inside_forced_tokens(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Let me think about this for a while longer.")
    llm.write(request.prompt_ids, thinking)
    trace = gen.generate([request], SamplingConfig(max_tokens=6), Budget(max_thinking_tokens=4))[0]
    assert trace.finish_reason == "length" and trace.capped and len(trace.completion_ids) == 6
    assert trace.forced == [False] * 4 + [True] * 2 and len(llm.calls) == 1


# ------------------------------------------------------------------ resume


def test_resumed_thinking_counts_as_the_models_own_and_is_fed_in_the_prompt(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Let me add two and two carefully, step by step.")
    llm.write(request.prompt_ids, thinking)
    llm.write(request.prompt_ids + thinking[:5] + forced_ids(tok), enc(tok, "4}"))
    resumed = replace(request, resume_ids=thinking[:3], resume_logprobs=[-1.0, -2.0, -3.0])
    trace = gen.generate([resumed], GREEDY, Budget(max_thinking_tokens=5))[0]
    (prompt,), (params,) = llm.calls[0][:2]
    assert prompt["prompt_token_ids"] == request.prompt_ids + thinking[:3] and params.max_tokens == 2
    assert trace.thinking_tokens == 5 and trace.capped and trace.completion_ids[:5] == thinking[:5]
    assert trace.logprobs[:3] == [-1.0, -2.0, -3.0] and trace.forced[:5] == [False] * 5


def test_resume_reaching_the_cap_forces_the_delimiter_before_any_sampling(gen, llm, tok):
    request = make_request(tok)
    thinking = enc(tok, "Let me add two and two.")
    llm.write(request.prompt_ids + thinking[:3] + forced_ids(tok), enc(tok, "4}"))
    resumed = replace(request, resume_ids=thinking[:3])
    trace = gen.generate([resumed], GREEDY, Budget(max_thinking_tokens=3))[0]
    (prompt,), (params,) = llm.calls[0][:2]
    assert prompt["prompt_token_ids"] == request.prompt_ids + thinking[:3] + forced_ids(tok)
    assert params.stop == [] and len(llm.calls) == 1  # straight to the answer round
    assert trace.capped and trace.thinking_tokens == 3 and trace.answer.endswith(CUE + "4}")


# ------------------------------------------------------------------ batching


def test_each_round_is_one_generate_call_and_progress_counts_finished_sequences(gen, llm, tok):
    closes, stops = make_request(tok, "What is 2+2?", request_id="a"), make_request(tok, "What is 3+3?", request_id="b")
    llm.write(closes.prompt_ids, enc(tok, "Four.</think> 4") + [tok.eos_token_id])
    llm.write(stops.prompt_ids, enc(tok, "Six.") + [tok.eos_token_id])
    done: list[int] = []
    budget = Budget(max_thinking_tokens=50, answer_after_eos=False)
    traces = gen.generate([closes, stops], GREEDY, budget, progress=done.append)
    assert [len(prompts) for prompts, _, _ in llm.calls] == [2, 1]
    assert done == [1, 1] and [t.request_id for t in traces] == ["a", "b"]
    assert [t.finish_reason for t in traces] == ["closed", "eos"]


# ------------------------------------------------------ agreement with hf


class PositionalLM(torch.nn.Module):
    """For the hf backend: the completion token at index k is ``script[k]`` (EOS past it)."""

    def __init__(self, prompt_len: int, script: list[int], vocab_size: int, eos_id: int):
        super().__init__()
        self.prompt_len, self.script, self.eos_id = prompt_len, script, eos_id
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = PretrainedConfig(vocab_size=vocab_size, num_hidden_layers=1)
        self.generation_config = SimpleNamespace(eos_token_id=eos_id)

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache, logits_to_keep):
        logits = torch.full((input_ids.shape[0], 1, self.config.vocab_size), -1e4)
        for r, position in enumerate(position_ids[:, -1].tolist()):
            k = position - self.prompt_len + 1
            logits[r, 0, self.script[k] if 0 <= k < len(self.script) else self.eos_id] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


AGREEMENT = {  # script, budget, SamplingConfig.max_tokens -> (finish_reason, capped, extensions)
    "closed": ("2 plus 2 is 4.</think> The answer is \\boxed{4}.", Budget(50), WIDE, ("closed", False, 0)),
    "capped": ("a} b} c} d} e} f} g} h} i} j} k} l} m} n} o}", Budget(7), WIDE, ("capped", True, 0)),
    "eos": ("Four.<|im_end|> x} y} z} w} v} u} t} s} r} q} p}", Budget(50), WIDE, ("eos", False, 0)),
    "extended": ("Four </think>. so 2+2=4.</think> 4", Budget(50, min_thinking_tokens=8), WIDE, ("closed", False, 1)),
    "max_tokens": ("Let me think about this for a while longer.", Budget(5), 8, ("length", True, 0)),
}


@pytest.mark.parametrize("case", sorted(AGREEMENT))
def test_traces_match_the_hf_backend_on_the_same_deterministic_model(case, gen, llm, tok):
    text, budget, max_tokens, outcome = AGREEMENT[case]
    request = make_request(tok)
    script = enc(tok, text)
    llm.positional = (len(request.prompt_ids), script)
    hf = HFGenerator(PositionalLM(len(request.prompt_ids), script, len(tok), tok.eos_token_id), tok, PROTOCOL)
    sampling = SamplingConfig(max_tokens=max_tokens)
    expected = hf.generate([request], sampling, budget)[0]
    got = gen.generate([request], sampling, budget)[0]
    assert (got.finish_reason, got.capped, got.extensions) == outcome  # the case tests what it says
    assert got.to_dict() == expected.to_dict()


# ------------------------------------------------------------ construction


def test_missing_vllm_raises_a_one_line_import_error_naming_the_extra(monkeypatch, model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # what `import vllm` sees when it is not installed
    with pytest.raises(ImportError) as err:
        VLLMGenerator(model_dir)
    assert "rlcot[vllm]" in str(err.value) and "\n" not in str(err.value)


def test_no_gpu_raises_a_one_line_error_pointing_to_the_hf_backend(monkeypatch, stub, model_dir):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError) as err:
        VLLMGenerator(model_dir)
    assert "--backend hf" in str(err.value) and "\n" not in str(err.value) and stub.built == []


def test_engine_is_built_with_prefix_caching_a_seed_and_processed_logprobs(monkeypatch, stub, model_dir):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    generator = VLLMGenerator(model_dir, gpu_memory_utilization=0.5)
    assert stub.built == [
        dict(
            model=str(model_dir),
            enable_prefix_caching=True,
            seed=0,
            logprobs_mode="processed_logprobs",
            gpu_memory_utilization=0.5,
        )
    ]
    assert generator.eos_ids == [generator.tokenizer.eos_token_id]


def test_engine_options_next_to_a_ready_engine_are_refused(llm, model_dir):
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        VLLMGenerator(model_dir, llm=llm, gpu_memory_utilization=0.5)


def test_get_generator_builds_the_vllm_backend_with_its_protocol(llm, model_dir):
    protocol = ThinkingProtocol(instruct=False)
    generator = get_generator("vllm", model_dir, protocol=protocol, llm=llm)
    assert isinstance(generator, VLLMGenerator) and generator.protocol is protocol and generator.llm is llm
