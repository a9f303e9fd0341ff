"""The training data of a recipe: its tasks' rows as prompts, interleaved, and the warm-up's pairs.

Each task's rows get their prompt built by ``Task.prompt`` (chat template, the recipe's
system message, instruction, pre-filled ``<think>``) as a plain-text ``prompt`` column,
with the task's key and the row (JSON) as columns the reward functions read; several
tasks are interleaved by their weights (seeded). Each task's rows after the first
``size`` are held out for evaluation (rows are a prefix-stable sequence, so they are
never trained on).

``sft_examples`` pairs each training prompt with what the SFT warm-up teaches
(``rlcot.train.trainer.sft_warmup``): the worked thought, the closing tag, the gold answer.
The data keeps the protocol its prompts were built with (``TrainingData.protocol``), so
the warm-up, the rollouts and the reward functions cannot ask in another way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from ..tasks import Task, get_task
from ..thinking import ThinkingProtocol
from .recipe import task_keys


@dataclass
class TrainingData:
    """What the trainer needs from the recipe's tasks."""

    tasks: dict[str, Task]  # task key -> task
    train_rows: list[dict]  # {"prompt", "task", "row"} in training order
    eval_rows: dict[str, list[dict]]  # task key -> held-out rows
    cues: dict[str, str] = field(default_factory=dict)  # prompt -> its task's answer cue
    examples: dict[str, tuple[str, dict]] = field(default_factory=dict)  # prompt -> (task key, row)
    protocol: ThinkingProtocol = field(default_factory=ThinkingProtocol)  # what the prompts were built with


def build_data(recipe, tokenizer, protocol: ThinkingProtocol | None = None) -> TrainingData:
    """The recipe's rows as prompts built with ``protocol`` (default: the recipe's, ``ThinkingSpec.protocol``)."""
    protocol = protocol or recipe.thinking.protocol()
    if protocol.system != recipe.thinking.system_prompt:
        raise ValueError(f"the protocol's system message {protocol.system!r} is not the recipe's "
                         f"thinking.system_prompt {recipe.thinking.system_prompt!r}; build the data with "
                         "recipe.thinking.protocol()")
    data = TrainingData(tasks={}, train_rows=[], eval_rows={}, protocol=protocol)
    per_task = []
    for key, mix in zip(task_keys(recipe), recipe.tasks):
        task = get_task(mix.name, data=mix.data, **dict(mix.options))
        rows = task.rows(mix.size + mix.eval_size, seed=recipe.seed)
        data.tasks[key] = task
        data.eval_rows[key] = rows[mix.size :]
        lines = []
        for row in rows[: mix.size]:
            prompt = task.prompt(row, tokenizer, protocol)
            data.cues[prompt] = task.answer_cue
            data.examples[prompt] = (key, row)
            lines.append({"prompt": prompt, "task": key, "row": json.dumps(row)})
        per_task.append((mix.weight, lines))
    data.train_rows = interleave(per_task, random.Random(recipe.seed))
    return data


def interleave(per_task: list[tuple[float, list[dict]]], rng: random.Random) -> list[dict]:
    """All rows of every task, the next one drawn from a task with probability by weight (seeded)."""
    queues = [(weight, list(lines)) for weight, lines in per_task if lines]
    out = []
    while queues:
        weights = [weight for weight, _ in queues]
        index = rng.choices(range(len(queues)), weights=weights)[0]
        out.append(queues[index][1].pop(0))
        queues = [(w, q) for w, q in queues if q]
    return out


def sft_examples(data: TrainingData, tokenizer) -> list[dict]:
    """Prompt-completion pairs for the warm-up: the training prompts (as built), the worked thought, the
    data's closing tag, the gold answer, EOS."""
    protocol, examples = data.protocol, []
    for line in data.train_rows:
        task = data.tasks[line["task"]]
        row = json.loads(line["row"])
        thought = task.worked_thought(row) or "Let me solve it."
        # a template that closed thinking itself (enable_thinking=false) leaves only the answer to teach
        thinking = "" if protocol.closed_in_prompt(line["prompt"]) else f"{thought}\n{protocol.close_tag}\n\n"
        examples.append({"prompt": line["prompt"],
                         "completion": thinking + task.gold_answer(row) + (tokenizer.eos_token or "")})
    return examples
