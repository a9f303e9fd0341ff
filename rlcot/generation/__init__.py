"""Generation backends: ``hf`` (transformers), ``vllm`` (GPU), ``openai`` (a running server); one Trace out."""

from __future__ import annotations

from .base import GenerationRequest, Generator, SamplingConfig, Trace, derive_seed
from .budget import Budget
from .sweep import probe, sweep

BACKENDS = ("hf", "vllm", "openai")


def get_generator(backend: str, model, tokenizer=None, protocol=None, **options) -> Generator:
    """``hf``: ``model``/``tokenizer`` are a loaded transformers pair. ``vllm``: ``model`` is a path or name.
    ``openai``: ``model`` is the served name; ``options`` take ``base_urls`` (see ``OpenAIGenerator``)."""
    if backend == "hf":
        from .hf import HFGenerator

        return HFGenerator(model, tokenizer, protocol, **options)
    if backend == "vllm":
        from .vllm import VLLMGenerator

        return VLLMGenerator(model, protocol=protocol, **options)
    if backend == "openai":
        from .openai import OpenAIGenerator

        return OpenAIGenerator(model, protocol=protocol, tokenizer=tokenizer, **options)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Budget", "GenerationRequest", "Generator", "SamplingConfig", "Trace", "derive_seed",
           "get_generator", "probe", "sweep"]
