"""Training recipes: one YAML file, our fields in one dataclass, TRL's in a ``grpo:`` block.

``rlcot train RECIPE.yaml --set thinking.max_thinking_tokens=64`` reads a recipe with
precedence defaults < YAML < ``--set``. Our own fields (tasks, rewards, thinking
budget, evaluation, LoRA) live in the frozen dataclasses below, documented once; this
module reads them (the YAML file, then each ``--set``) into typed dataclasses, with
errors that name the key, the bad value and the fix, and hands the result to
``rlcot.train.checks.check_recipe`` before returning it. The ``grpo:`` block goes
verbatim to ``trl.GRPOConfig`` so TRL validates it itself; the defaults a small CPU
run needs are added when the recipe is resolved (``rlcot.train.resolve``).

The modules of a recipe: this one (the schema, reading, ``--set``, the recipe as plain
data), ``rlcot.train.checks`` (every value checked before a model loads) and
``rlcot.train.resolve`` (a checked recipe resolved once into a run).

YAML trap: PyYAML follows YAML 1.1, where ``1e-4`` is a *string* (1.1 floats need a
dot: ``1.0e-4``). A learning rate as a string passes TRL's config and fails much
later in the optimizer, so recipes and ``--set`` values are read with a loader that
also takes YAML 1.2 floats.

Nothing here loads a model or data.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..files import read_text
from ..thinking import ThinkingProtocol, check_template_kwargs


@dataclass(frozen=True)
class TaskMix:
    name: str  # arith, gsm8k, sudoku, crossword, jsonl:PATH, hf:NAME[:CONFIG][@SPLIT] (rlcot.tasks.get_task names)
    weight: float = 1.0  # mixing weight when several tasks
    size: int = 256  # training rows drawn from it
    data: str | None = None  # file of a file-backed task
    # task options (unanswerable: 0.3, size: 4; a file's columns: question_field: problem) -> get_task(**)
    options: dict = field(default_factory=dict)
    eval_size: int = 32  # held-out rows (built with another seed, never trained on)


REWARD_KINDS = ("verifier", "within_cap")  # RewardSpec.kind values (rlcot.train.rewards)


@dataclass(frozen=True)
class RewardSpec:
    verifier: str | None = None  # None: each task's own verifier; else a verifiers name / module:attr
    weight: float = 1.0  # TRL reward_weights entry
    scheme: str = "binary"  # binary, default (the hedge scheme +1/+0.5/0/-2/-4), or a YAML file
    # verifier: the scored answer; within_cap: 1 when the thinking closed by itself before its cap, 0 when
    # budget forcing cut it (the L1 length term under forcing; no verifier, no scheme)
    kind: str = "verifier"


@dataclass(frozen=True)
class ThinkingSpec:
    # the rollout cap, or a list of caps: each group of rollouts draws one (the policy learns every cap it is
    # evaluated at, not only the largest)
    max_thinking_tokens: int | tuple[int, ...] = 128
    min_thinking_tokens: int = 0  # s1 'Wait' extension below this
    max_answer_tokens: int | None = None  # None: the largest of the tasks' own answer caps
    # each rollout's prompt states its cap ("Think for at most B tokens.", rlcot.tasks.BUDGET_SENTENCE), so the
    # trained model can be asked for a budget; forcing still cuts at the cap (hf rollouts only)
    state_cap: bool = False
    # the prompts' system message, in training, the SFT warm-up, the eval curves and sweeps of the run; null: the
    # chat template's own (SmolLM2's is "You are a helpful AI assistant named SmolLM, ...", 16 tokens of every
    # prompt); "": an empty one. On the command line: --set 'thinking.system_prompt=""' (a bare = is null)
    system_prompt: str | None = None
    # options for the chat template, e.g. {enable_thinking: false} (Qwen3), recorded with the run so its sweeps and
    # evals ask the same way (rlcot.thinking); --set thinking.chat_template_kwargs.enable_thinking=false
    chat_template_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        try:
            check_template_kwargs(self.chat_template_kwargs)
        except ValueError as err:
            raise ValueError(f"thinking.chat_template_kwargs: {err}") from None

    @property
    def caps(self) -> tuple[int, ...]:
        """The rollout caps a group draws from, smallest first (one, unless the recipe lists several)."""
        caps = self.max_thinking_tokens
        return tuple(sorted(set(caps))) if isinstance(caps, tuple) else (caps,)

    def protocol(self) -> ThinkingProtocol:
        """The thinking protocol every prompt of the run is built with (training, warm-up, evals, sweeps)."""
        return ThinkingProtocol(system=self.system_prompt, chat_template_kwargs=dict(self.chat_template_kwargs))


@dataclass(frozen=True)
class EvalSpec:
    every: int = 0  # steps between budget curves on held-out rows (0: only at start and end)
    budgets: tuple[int, ...] = (0, 32, 64, 128)  # thinking budgets of the curve
    samples: int = 1  # completions per row and budget
    temperature: float = 0.0
    # mean@k: a second curve of k samples per row at the training temperature (what GRPO optimizes); 0: none
    sampled: int = 4


@dataclass(frozen=True)
class Recipe:
    model: str = "smollm2-135m"  # a built-in name, a local directory or a hub id
    tasks: tuple[TaskMix, ...] = (TaskMix("arith"),)
    rewards: tuple[RewardSpec, ...] = (RewardSpec(),)
    thinking: ThinkingSpec = field(default_factory=ThinkingSpec)
    peft: dict | None = None  # fields for peft.LoraConfig; None = full fine-tune
    grpo: dict = field(default_factory=dict)  # passed verbatim to trl.GRPOConfig
    eval: EvalSpec = field(default_factory=EvalSpec)
    seed: int = 0  # also GRPOConfig.seed
    output_dir: str = "runs/train"  # also GRPOConfig.output_dir
    sft_warmup: dict | None = None  # optional TRL SFT warm-up on the answer format: {steps: 20, learning_rate: 1e-4}
    control: str | None = None  # None, or random-reward: each reward a coin flip of its mean (rlcot.train.control)


# ---------------------------------------------------------------- reading


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-4`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML would read it (``64``, ``5e-6``, ``[q_proj, v_proj]``, ``null``)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text  # an unquoted string YAML cannot read, e.g. "a: b: c"


def load_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> Recipe:
    """A checked ``Recipe``: defaults < the YAML file at ``path`` < ``overrides`` (``key=value``)."""
    merged = resolved(Recipe())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"recipe {str(path)!r} does not exist; give a YAML file, e.g. recipes/arith-grpo-cpu.yaml")
        try:
            values = yaml.load(read_text(path, "recipe"), Loader=_Loader)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"{path}: a recipe is a mapping of fields, got {type(values).__name__}")
        merged = _merge(merged, values or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} is not key=value; write e.g. --set thinking.max_thinking_tokens=64")
        _set_dotted(merged, key.strip(), parse_value(text))
    from .checks import check_recipe  # checks imports this module

    recipe = _build(Recipe, merged, "")
    check_recipe(recipe)
    return recipe


def _merge(base: Any, update: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) replaces."""
    if isinstance(base, dict) and isinstance(update, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in update.items()}}
    return update


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):  # tasks.1.name=gsm8k on a one-task recipe adds a task
            index = _index(node, part, where, key, allow_append=True)
            if index == len(node):
                node.append({})
            node = node[index]
        elif isinstance(node, dict):
            if node.get(part) is None:  # peft.r=16 on a recipe without peft starts the block
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"--set {key}: {where!r} is a {type(node).__name__}, not a block with fields")
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, key, key, allow_append=True)
        node[index:index + 1] = [value]
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"--set {key}: {'.'.join(parts[:-1])!r} is a {type(node).__name__}, not a block with fields")


def _index(items: list, part: str, where: str, key: str, allow_append: bool = False) -> int:
    limit = len(items) + (1 if allow_append else 0)
    if not part.isdigit() or int(part) >= limit:
        raise ValueError(f"--set {key}: {where!r} needs a list index below {limit} (the list has {len(items)} entries)")
    return int(part)


# ---------------------------------------------------------------- typing our fields


def _build(cls: type, values: Any, where: str) -> Any:
    if isinstance(values, str) and cls is TaskMix:  # tasks: [arith, gsm8k] is shorthand for names
        values = {"name": values}
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'recipe'}: expected a mapping of {cls.__name__} fields, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ValueError(f"unknown key {join_key(where, key)!r}{did_you_mean(str(key), names)}; "
                             f"{cls.__name__} fields are {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"{where or 'recipe'}: {cls.__name__} needs {', '.join(missing)}")
    return cls(**{key: _typed(value, hints[key], join_key(where, key)) for key, value in values.items()})


def _typed(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        if len(inner) > 1:  # a number or a list of them (thinking.max_thinking_tokens): the value's shape picks
            listed = [arg for arg in inner if typing.get_origin(arg) is tuple]
            inner = listed if isinstance(value, (list, tuple)) else [arg for arg in inner if arg not in listed]
        return _typed(value, inner[0], where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]  # budgets: 64 means (64,)
        return tuple(_typed(item, args[0], f"{where}.{i}") for i, item in enumerate(value))
    expected = {int: "a whole number", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        dict: isinstance(value, dict),
    }[hint]
    if not ok:
        raise ValueError(f"{where}: {value!r} is not {expected[hint]}; fix the recipe or --set {where}=...")
    return float(value) if hint is float else value


def join_key(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def task_keys(recipe: Recipe) -> list[str]:
    """A key per recipe task: its name, numbered when a name repeats (arith, arith#2).

    A key names the folder of the task's eval curves (``eval/<key>``), so a name holding a
    path (``hf:/data/math500.parquet@test``) keeps only word characters, ``.``, ``+`` and
    ``-``, each other run becoming one ``_`` (``hf_data_math500.parquet_test``).
    """
    keys, seen = [], {}
    for mix in recipe.tasks:
        name = re.sub(r"[^\w.+-]+", "_", mix.name).strip("_") or "task"
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


# ---------------------------------------------------------------- showing


def resolved(recipe: Recipe) -> dict:
    """The recipe as plain JSON-able data (tuples become lists); ``_build`` reads it back."""
    return plain(dataclasses.asdict(recipe))


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value

