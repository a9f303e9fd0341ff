"""Shared fixtures: the real tokenizer, a tiny random llama, a scripted stand-in model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig

from rlcot.generation.base import GenerationRequest
from rlcot.builtin_models import ensure_builtin_cached, tiny_llama
from rlcot.models import load_policy
from rlcot.thinking import ThinkingProtocol


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2's tokenizer (converted once from the GGUF into the rlcot cache)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ensure_builtin_cached("smollm2-135m")))


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    return tiny_llama(vocab_size=len(tokenizer), seed=0)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer, tiny_model):
    """The tiny model saved as a directory, as a user's model would be."""
    path = tmp_path_factory.mktemp("tiny")
    tiny_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def default_policy():
    # fp32 on every CPU, whatever load_policy's own choice there: the tests then check
    # the same numbers on an EPYC as on a Xeon with AMX (where "auto" may pick bf16)
    return load_policy("smollm2-135m", device="cpu", dtype=torch.float32)


@pytest.fixture
def protocol():
    return ThinkingProtocol()


def make_request(tokenizer, protocol, question="What is 2 + 3?", cue="The final answer is \\boxed{", seed=0, rid=0):
    prompt = protocol.build_prompt(tokenizer, question)
    return GenerationRequest(
        prompt=prompt,
        prompt_ids=tokenizer.encode(prompt, add_special_tokens=False),
        answer_cue=cue,
        seed=seed,
        request_id=rid,
    )


class ScriptedLM(torch.nn.Module):
    """A stand-in model whose next token is ``respond(completion_so_far)``.

    It keeps the token history in the KV cache it is handed (one layer, the ids as
    keys), so compaction moves it like real keys and values, and it reads the
    attention mask, so tokens the generator takes back vanish from what it sees:
    exactly the contract a real model has with the generator. ``respond`` returning
    ``None`` means EOS.
    """

    def __init__(self, prompt_len: int, respond, vocab_size: int, eos_id: int):
        super().__init__()
        self.prompt_len, self.respond, self.eos_id = prompt_len, respond, eos_id
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the generator a device
        self.config = LlamaConfig(vocab_size=vocab_size, num_hidden_layers=1)
        self.generation_config = SimpleNamespace(eos_token_id=eos_id)

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache, logits_to_keep):
        fed = input_ids[:, None, :, None].float()
        history, _ = past_key_values.update(fed, fed, 0)
        logits = torch.full((input_ids.shape[0], 1, self.config.vocab_size), -1e4)
        for r in range(input_ids.shape[0]):
            seen = history[r, 0, :, 0][attention_mask[r].bool()].long().tolist()
            token = self.respond(seen[self.prompt_len :])
            logits[r, 0, self.eos_id if token is None else token] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def script(ids: list[int]):
    """``respond`` for a fixed script: the completion's next token is ``ids[len(completion)]``."""
    return lambda completion: ids[len(completion)] if len(completion) < len(ids) else None


@pytest.fixture
def scripted(tokenizer, protocol):
    """``scripted(text)`` -> (model, request): a model that completes the request's prompt with ``text``."""

    def build(text: str, cue: str = "The final answer is \\boxed{"):
        request = make_request(tokenizer, protocol, cue=cue)
        ids = tokenizer.encode(text, add_special_tokens=False)
        model = ScriptedLM(len(request.prompt_ids), script(ids), len(tokenizer), tokenizer.eos_token_id)
        return model, request

    return build
