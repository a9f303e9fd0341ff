"""Tiny random models of several families, saved as a user's model directory is, with their real chat templates.

Each family is its transformers architecture (Llama, Qwen2, Qwen3, Gemma2) at 1 layer
and hidden size 32, its published chat template (``tests/fixtures/chat_templates/``,
README there) and a tokenizer that has the special tokens that template writes, with
the family's own BOS and EOS. The tokenizer is the default model's (SmolLM2's BPE, in
the rlcot cache, no download) plus those tokens: the vocabulary differs from the real
model's, the chat format does not. ``<think>``/``</think>`` are added as ordinary
tokens, as Qwen3 and the R1 distills have them (not special: decoding keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"
SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            head_dim=16, max_position_embeddings=2048)


@dataclass(frozen=True)
class Family:
    name: str
    config: str  # the transformers config class
    template: str  # file under TEMPLATES
    bos: str | None
    eos: str
    special: tuple[str, ...] = ()  # tokens the template writes
    think_tokens: bool = False  # <think> and </think> are tokens of the vocabulary
    native: bool = False  # the template knows the thinking section (rlcot.thinking.thinks_natively)
    config_options: dict = field(default_factory=dict, hash=False)


FAMILIES = {family.name: family for family in (
    Family("llama", "LlamaConfig", "meta-llama-Llama-3.2-3B-Instruct.jinja", bos="<|begin_of_text|>",
           eos="<|eot_id|>", special=("<|start_header_id|>", "<|end_header_id|>")),
    Family("qwen2-r1", "Qwen2Config", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
           bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>",
           special=("<｜User｜>", "<｜Assistant｜>"),
           think_tokens=True, native=True),
    Family("qwen3", "Qwen3Config", "Qwen-Qwen3-0.6B.jinja", bos=None, eos="<|im_end|>",
           special=("<|im_start|>",), think_tokens=True, native=True),
    Family("gemma2", "Gemma2Config", "google-gemma-2-2b-it.jinja", bos="<bos>", eos="<end_of_turn>",
           special=("<start_of_turn>",), config_options={"query_pre_attn_scalar": 16}),
)}


def build_family(family: Family, base_tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    """Save ``family``'s tiny random model, its tokenizer and its real chat template to ``out``."""
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_tokenizer_dir))
    tokens = {"eos_token": family.eos, "pad_token": family.eos,
              "additional_special_tokens": [t for t in family.special if t != family.eos]}
    if family.bos is not None:
        tokens["bos_token"] = family.bos
    tokenizer.add_special_tokens(tokens)
    if family.think_tokens:
        tokenizer.add_tokens(["<think>", "</think>"])  # ordinary added tokens, as in Qwen3's tokenizer
    tokenizer.chat_template = (TEMPLATES / family.template).read_text()
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("bos_token_id", family.bos or family.eos), ("eos_token_id", family.eos), ("pad_token_id", family.eos))}
    config = getattr(transformers, family.config)(vocab_size=len(tokenizer), **SIZE, **ids, **family.config_options)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = ids["eos_token_id"]
    model.generation_config.pad_token_id = ids["pad_token_id"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
