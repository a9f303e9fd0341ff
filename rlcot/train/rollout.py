"""Budget-forced rollouts for TRL's GRPOTrainer, through its ``rollout_func`` hook.

TRL's own generation cannot force a thinking budget, so with the ``hf`` backend the
trainer's rollouts come from our generator (``rlcot.generation.hf``) with the
recipe's budget. The contract, as read from TRL 1.16's source
(``trl/trainer/grpo_trainer.py``, ``GRPOTrainer._generate``):

- ``rollout_func(prompts, trainer)`` gets the raw dataset prompts of this process,
  already repeated ``num_generations`` times, and returns ONE completion per prompt:
  ``prompt_ids``, ``completion_ids``, ``logprobs``; every other key becomes a per-row
  column for the reward functions (here ``thinking_tokens`` and ``capped``).
- ``env_mask`` (one flag per completion token) multiplies the loss mask. Forced
  tokens (the delimiter, the answer cue, ``Wait``, an appended EOS) get 0: the model
  did not choose them, so they never enter the loss.
- TRL counts a completion as truncated when its last token is neither EOS nor pad.
  An answer that ended because its box closed (``\\boxed{42}``) is finished, so an EOS
  is appended to it (forced, masked); only a completion the model really left
  unfinished (``finish_reason == "length"``) stays truncated.

A recipe may list several caps (``thinking.max_thinking_tokens: [32, 64, 128]``): each
group (the ``num_generations`` rollouts of one prompt, which TRL hands over
consecutively) then draws one, seeded by (recipe seed, step, process, group), so the
group's advantages compare rollouts under one cap while the policy learns to do its
best under every cap it will be evaluated at, not only the largest. Each cap's groups
are generated together; the cap each rollout ran under is the ``cap`` column the
reward functions receive.

With ``thinking.state_cap`` each rollout's prompt also states its group's cap
("Think for at most B tokens.", ``rlcot.tasks.BUDGET_SENTENCE``): the trainer hands a
``restate(prompt, cap)`` that rebuilds the dataset prompt with the cap stated, and that
text is the request's prompt and ``prompt_ids``. TRL computes the policy's logprobs
over the ``prompt_ids`` returned, so the policy is trained on the stated prompt; the
reward functions still get the dataset prompt (the scorer reads only its pre-filled
``<think>``, which both share). Forcing still cuts at the cap, so a rollout that
overruns the stated budget is ``capped``, which a ``within_cap`` reward
(``rlcot.train.rewards``) pays 0 for. The kept rollouts store the stated prompt.

Sampling follows the trainer's ``temperature`` with top-p 1, so the logprobs TRL
recomputes are of the distribution the tokens were drawn from. With ``copy_policy`` (on
by default on a CPU: ``rlcot.train.trainer.build_trainer``) and a trainer computing in
bf16 (or fp16), the tokens are drawn from a plain copy of the policy, LoRA merged in and
cast to that dtype (``rlcot.train.sampling_copy``: bf16 weights halve what every decode
step reads); the logprobs are still TRL's, of the policy itself. All of a step's rollouts under one cap
decode as one batch. Each rollout draws seeds from (recipe seed, step, process,
position), so a resumed run redraws the same rollouts for the same step. The model is put in eval mode while generating (with
gradient checkpointing in train mode, transformers would switch the KV cache off)
and back afterwards.

The first ``keep_traces`` rollouts of every step are kept, scored, in the run's
``rollouts.jsonl`` (``rlcot.runinfo.ROLLOUTS``): a ``rlcot.store`` file like a sweep's,
each keyed by (step, position, seed, prompt), so the report reads them with the one
reader, and a step redone after a resume replaces nothing already stored.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ..generation import Budget
from ..generation.base import GenerationRequest, SamplingConfig, derive_seed
from ..generation.hf import HFGenerator
from ..thinking import ThinkingProtocol


class BudgetForcedRollout:
    """``rollout_func`` for GRPOTrainer: our hf generator under the recipe's thinking budget.

    ``cues`` maps each dataset prompt to its task's answer cue. ``rollouts_path``, when
    given, is the store (``rlcot.store.TraceStore``) the first ``keep_traces`` rollouts
    of every step go to, each as the ``ScoredTrace`` ``judge(trace)`` gives it, labelled
    ``model``. ``restate(prompt, cap)``, when given, is the dataset prompt stating
    ``cap``: what each rollout is generated from (module docstring). ``copy_policy``: when the
    trainer computes in bf16 or fp16, sample from a ``SamplingCopy`` of the policy in that dtype.
    """

    def __init__(self, tokenizer, protocol: ThinkingProtocol, budget: Budget, cues: Mapping[str, str],
                 seed: int = 0, rollouts_path: Path | None = None, keep_traces: int = 4,
                 judge: Callable | None = None, model: str = "", caps: Sequence[int] = (),
                 restate: Callable[[str, int], str] | None = None, copy_policy: bool = False):
        self.tokenizer, self.protocol, self.budget = tokenizer, protocol, budget
        self.copy_policy, self.copy = copy_policy, None
        self.caps = tuple(caps) or (budget.max_thinking_tokens,)
        self.cues, self.seed, self.restate = dict(cues), seed, restate
        self.rollouts_path, self.keep_traces, self.judge, self.model = rollouts_path, keep_traces, judge, model
        self.last_traces: list = []

    def __call__(self, prompts: list[str], trainer) -> dict:
        step = trainer.state.global_step
        process = trainer.accelerator.process_index
        caps = self.group_caps(prompts, step, process)
        requests = [self.request(prompt, i, step, process, cap) for i, (prompt, cap) in enumerate(zip(prompts, caps))]
        sampling = SamplingConfig(temperature=trainer.args.temperature or 1.0,
                                  max_tokens=trainer.args.max_completion_length or 4096)
        traces = [None] * len(requests)
        for cap in sorted(set(caps)):  # one generation per cap drawn: its groups decode together
            picked = [i for i, c in enumerate(caps) if c == cap]
            budget = replace(self.budget, max_thinking_tokens=cap)
            for i, trace in zip(picked, self.generate(trainer, [requests[i] for i in picked], sampling, budget)):
                traces[i] = trace
        self.last_traces = traces
        if trainer.accelerator.is_main_process:
            self._keep(traces, prompts, step, sampling.temperature)
        eos = self.tokenizer.eos_token_id
        completion_ids, env_mask, logprobs = [], [], []
        for trace in traces:
            ids, forced, lps = list(trace.completion_ids), list(trace.forced), list(trace.logprobs)
            if trace.finish_reason != "length" and (not ids or ids[-1] != eos):
                ids, forced, lps = ids + [eos], forced + [True], lps + [None]  # finished: say so to TRL
            completion_ids.append(ids)
            env_mask.append([0 if f else 1 for f in forced])
            logprobs.append(lps)
        return {
            "prompt_ids": [r.prompt_ids for r in requests],
            "completion_ids": completion_ids,
            "logprobs": logprobs,
            "env_mask": env_mask,
            "thinking_tokens": [t.thinking_tokens for t in traces],
            "capped": [t.capped for t in traces],
            "cap": caps,
        }

    def group_caps(self, prompts: list[str], step: int, process: int) -> list[int]:
        """The cap each rollout runs under: one draw per group of consecutive identical prompts."""
        caps, group = [], -1
        for i, prompt in enumerate(prompts):
            if i == 0 or prompt != prompts[i - 1]:
                group += 1
                draw = random.Random(derive_seed(self.seed, f"cap:step{step}:proc{process}", group))
                cap = draw.choice(self.caps) if len(self.caps) > 1 else self.caps[0]
            caps.append(cap)
        return caps

    def request(self, prompt: str, position: int, step: int, process: int, cap: int | None = None
                ) -> GenerationRequest:
        """The request for dataset ``prompt``; with ``restate``, its text states ``cap``."""
        if prompt not in self.cues:
            raise ValueError("a rollout prompt is not in the training dataset the rollout was built for; "
                             "build the trainer with rlcot.train.trainer.build_trainer")
        text = prompt if self.restate is None or cap is None else self.restate(prompt, cap)
        return GenerationRequest(
            prompt=text, prompt_ids=self.tokenizer.encode(text, add_special_tokens=False),
            answer_cue=self.cues[prompt], seed=derive_seed(self.seed, f"step{step}:proc{process}", position),
            request_id=position,
        )

    def generate(self, trainer, requests: list[GenerationRequest], sampling: SamplingConfig, budget: Budget) -> list:
        from trl.models.utils import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model, torch.no_grad():
            sampler = self.sampler(model, trainer.args)
            was_training = model.training
            model.eval()
            try:
                generator = HFGenerator(sampler, self.tokenizer, self.protocol, batch_size=max(len(requests), 1))
                return generator.generate(requests, sampling, budget)
            finally:
                model.train(was_training)

    def sampler(self, policy, args):
        """What the rollouts are drawn from: the policy, or (``copy_policy``) its copy with its weights now."""
        from .sampling_copy import SamplingCopy

        if self.copy_policy and self.copy is None:
            self.copy_policy = False  # decided once, at the first step
            # Only a narrower dtype pays for the copy's memory: in fp32, merging LoRA alone saved ~13% of
            # generation for a second full-size copy of the weights, and fp32 runs keep sampling as before.
            dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
            if dtype is not None and SamplingCopy.supports(policy):
                self.copy = SamplingCopy(dtype)
        return policy if self.copy is None else self.copy.refresh(policy)

    def _keep(self, traces: list, prompts: list[str], step: int, temperature: float) -> None:
        if self.rollouts_path is None or self.judge is None or not traces:
            return
        from ..generation.base import forced_spans
        from ..store import TraceStore, content_key

        # the judge finds the row by the dataset prompt; the record keeps the prompt generated from (a stated cap)
        kept = [self.judge(replace(trace, prompt=prompt)).with_context(
            key=content_key({"step": step, "position": position, "seed": trace.seed, "prompt": trace.prompt}),
            prompt=trace.prompt, mode="rollout", model=self.model, step=step, temperature=temperature, top_p=1.0,
            backend="hf", protocol=self.protocol.to_dict(), forced_spans=forced_spans(trace, self.tokenizer))
            for position, (trace, prompt) in enumerate(zip(traces[: self.keep_traces], prompts))]
        with TraceStore(self.rollouts_path).writing("rlcot train") as writer:
            writer.append(kept)
