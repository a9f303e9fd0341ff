"""What a sweep runs: the spec (``SweepSpec``) and the models it names (``expand_models``).

A spec is one YAML file or a set of ``rlcot sweep`` flags, validated whole before any
model loads: every error names the bad value and the flag that fixes it. Its models
are built-in names, directories, or a training run's output directory, which counts
as one model per kept ``checkpoint-N`` and its final weights (``RUN_DIR@last`` and
``RUN_DIR@N`` pick one of them). Each becomes a ``ModelRef`` whose step and run
directory let its rows plot over training. Running the spec is ``rlcot.evals.sweep``;
storing its rows is ``rlcot.store``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from rlcot.generation.openai import SERVER_OPTIONS
from rlcot.runinfo import (checkpoints, has_final_weights, is_training_run, recorded_recipe, run_of,
                           run_without_weights, saved_weights, split_run_pick)
from rlcot.thinking import ThinkingProtocol, check_template_kwargs

# ------------------------------------------------------------------ the spec

GENERATED_ROWS = 64  # rows a sweep of a generated task (arith, chain, sudoku, ...) takes without a limit


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep. ``rlcot sweep SPEC.yaml`` reads these fields; flags override them."""

    models: tuple[str, ...] = ("smollm2-135m",)  # names, directories, or a training run's output directory
    task: str = "arith"
    data: str | None = None  # the JSONL file of a file-backed task (gsm8k)
    task_args: dict[str, Any] = field(default_factory=dict, hash=False)  # task options: unanswerable, size, ...
    budgets: tuple[int, ...] = (0, 16, 32, 64, 128, 256)  # thinking caps; one run at the largest, forks below
    extend: tuple[int, ...] = ()  # s1 "Wait" budgets: think at least and at most B tokens, one run each
    # budgets the prompt states ("Think for at most B tokens."), forced only at STATED_SLACK * B: asked, not forced
    stated: tuple[int, ...] = ()
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    backend: str = "hf"
    dtype: str = "auto"
    limit: int | None = None  # task rows; None: every row of a file-backed task, GENERATED_ROWS of a generated one
    skip: int = 0  # start after this many rows (e.g. the rows a training run trained on)
    max_answer_tokens: int | None = None  # default: the task's
    batch_size: int = 64
    gold_logprob: bool = True  # the continuous metric beside accuracy (hf backend)
    scheme: str = "default"
    device: str | None = None
    vllm_options: dict[str, Any] = field(default_factory=dict, hash=False)  # e.g. tensor_parallel_size: 4
    # backend openai: the servers' /v1 URLs, the variable holding the API key (never the key), requests in flight,
    # where the tokenizer comes from (default: the model name) and OpenAIGenerator options (token_ids, retries, ...)
    base_urls: tuple[str, ...] = ()
    api_key_env: str | None = None
    max_in_flight: int = 64
    tokenizer: str | None = None
    server_options: dict[str, Any] = field(default_factory=dict, hash=False)
    # the prompts' system message; None: the one the training run among the models trained with (its run.json),
    # else the chat template's own; "": an empty one (sweep_protocol)
    system_prompt: str | None = None
    # chat template options (enable_thinking: false); None: the ones the training run among the models trained
    # with, else none (sweep_protocol)
    chat_template_kwargs: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self):
        for name in ("samples", "limit", "skip", "batch_size", "seed", "max_in_flight"):
            value = getattr(self, name)
            if name == "limit" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} is not a whole number; e.g. --{name.replace('_', '-')} 4")
        if self.max_answer_tokens is not None and (isinstance(self.max_answer_tokens, bool) or not isinstance(
                self.max_answer_tokens, int) or self.max_answer_tokens < 1):
            raise ValueError(f"max_answer_tokens={self.max_answer_tokens!r} is not a whole number >= 1; "
                             "e.g. --max-answer-tokens 32, or leave it out for the task's own")
        if not _is_number(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature={self.temperature!r} is not a finite number >= 0; "
                             "e.g. --temperature 0 (greedy) or 0.7")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:  # NaN fails both comparisons
            raise ValueError(f"top_p={self.top_p!r} is not in (0, 1]; e.g. --top-p 0.95, or 1 to keep every token")
        if not self.models:
            raise ValueError("no models to sweep; pass --model NAME (repeatable) or list them under 'models:'")
        if not self.budgets and not self.extend and not self.stated:
            raise ValueError("no budgets; pass --budgets 0,16,32,64 (or --extend 64,128, --stated 32,64)")
        bad = [b for b in (*self.budgets, *self.extend, *self.stated)
               if isinstance(b, bool) or not isinstance(b, int) or b < 0]
        if bad:
            raise ValueError(f"budgets {bad} are not whole numbers of thinking tokens >= 0; e.g. --budgets 0,16,64")
        if self.samples < 1:
            raise ValueError(f"samples={self.samples} must be >= 1")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples={self.samples} with greedy decoding gives {self.samples} copies of one trace; "
                             "set --temperature above 0 (e.g. 0.7)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be >= 1 task rows")
        if self.skip < 0:
            raise ValueError(f"skip={self.skip} must be >= 0 rows")
        if self.backend not in ("hf", "vllm", "openai"):
            raise ValueError(f"backend {self.backend!r} is not hf, vllm or openai")
        if self.backend == "openai" and not self.base_urls:
            raise ValueError("--backend openai needs the server: --base-url http://HOST:PORT/v1 (repeatable)")
        if self.backend != "openai" and self.base_urls:
            raise ValueError(f"--base-url {self.base_urls[0]} only applies to --backend openai; add it, or drop "
                             "the URL")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight={self.max_in_flight} must be >= 1 requests")
        unknown = sorted(set(self.server_options) - set(SERVER_OPTIONS))
        if unknown:
            raise ValueError(f"server option {unknown[0]!r} is not one of {', '.join(SERVER_OPTIONS)}; "
                             "e.g. --server-arg retries=3")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ValueError(f"system_prompt={self.system_prompt!r} is not a string; e.g. --system-prompt '' "
                             "(an empty system message), or leave it out")
        if self.chat_template_kwargs is not None:
            check_template_kwargs(self.chat_template_kwargs)

    def row_limit(self, task) -> int | None:
        """How many rows to sweep: ``limit``; by default all of a file-backed task's, ``GENERATED_ROWS`` otherwise."""
        if self.limit is not None:
            return self.limit
        return None if task.file_backed else GENERATED_ROWS

    @classmethod
    def from_mapping(cls, values: dict, source: str = "the spec") -> "SweepSpec":
        """Build from a YAML mapping: unknown keys get a did-you-mean, lists become tuples."""
        import difflib

        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(known))}"
                raise ValueError(f"{source}: unknown key {key!r}; {hint}")
        values = dict(values)
        for key in ("models", "base_urls"):
            if isinstance(values.get(key), str):
                values[key] = [values[key]]
        if "base_urls" in values:
            values["base_urls"] = tuple(values["base_urls"] or ())
        for key in ("models", "budgets", "extend", "stated"):
            if key in values:
                values[key] = tuple(parse_budgets(values[key]) if key != "models" else values[key])
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> "SweepSpec":
        import yaml

        from rlcot.files import read_text

        text = read_text(path, "sweep spec")
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: cannot read the sweep spec ({err.__class__.__name__}); "
                             "write one 'key: value' per line") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a sweep spec is a mapping of keys (models, task, budgets, ...)")
        return cls.from_mapping({**values, **overrides}, source=str(path))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_budgets(value) -> list[int]:
    """``"0,16,32"``, ``[0, 16, 32]`` or ``16`` -> ``[0, 16, 32]``; a clear error otherwise."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        items = [part.strip() for part in str(value).split(",") if part.strip()]
    try:
        return [int(item) for item in items]
    except (TypeError, ValueError):
        raise ValueError(f"budgets {value!r} are not comma-separated whole numbers; e.g. 0,16,32,64") from None


# ------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelRef:
    """One model a sweep runs: a built-in name, a directory, or one checkpoint of a run."""

    label: str  # what plots and tables call it
    path: str  # what load_policy (or vLLM) is given
    step: int | None = None  # the training step of a checkpoint
    run_dir: str | None = None  # the training run it belongs to (its trainer_state.json has the LR schedule)


def expand_models(names: Iterable[str]) -> list[ModelRef]:
    """Each name as a model; a training run's directory as one model per ``checkpoint-N`` (and its final one).

    ``RUN_DIR@last`` picks the run's final weights alone and ``RUN_DIR@N`` its step N;
    on a directory with neither checkpoints nor final weights, either is a ``ValueError``.
    Any other ``@`` (``org/model@main``, where no run directory is named) is part of the name.
    """
    refs = []
    for name in names:
        picked = split_run_pick(name)  # RUN@last, RUN@N; a ValueError where RUN saved nothing yet
        if picked:
            refs.append(_pick_step(*picked))
            continue
        path = Path(name).expanduser()
        if is_training_run(path) and not checkpoints(path) and not has_final_weights(path):
            raise run_without_weights(path, name)
        if not checkpoints(path):
            refs.append(ModelRef(label=path.name if path.is_dir() else name, path=name))
            continue
        refs += _run_steps(path)
    return refs


def _run_steps(path: Path) -> list[ModelRef]:
    """A training run's models by step: every kept ``checkpoint-N``, then its final weights (``saved_weights``)."""
    return [ModelRef(label=path.name if step is None else f"{path.name}@{step}", path=str(where), step=step,
                     run_dir=str(path)) for step, where in saved_weights(path)]


def _pick_step(path: Path, pick: str) -> ModelRef:
    refs = _run_steps(path)
    if not refs:
        raise run_without_weights(path, f"{path}@{pick}")
    if pick == "last":
        return refs[-1]
    chosen = [ref for ref in refs if pick.isdigit() and ref.step == int(pick)]
    if not chosen:
        raise ValueError(f"{path}@{pick}: the run has steps {', '.join(str(r.step) for r in refs)}; "
                         f"pick one of them or {path}@last")
    return chosen[0]


# ------------------------------------------------------------------ the prompts


def sweep_protocol(spec: SweepSpec, refs: Iterable[ModelRef]) -> tuple[ThinkingProtocol, list[str]]:
    """``(protocol, notes)``: how the sweep's prompts are built, and what to tell the user about it.

    A trained model is asked as it was trained: what the spec leaves unset (``None``) of
    ``system_prompt`` and ``chat_template_kwargs`` is what the ``run.json`` of the training
    run the models come from recorded (``thinking.system_prompt``,
    ``thinking.chat_template_kwargs``; a run from before those fields, or without a
    run.json, trained on the chat template's own message and options). Models of runs
    that trained differently cannot share a sweep: a sweep directory has one protocol.
    """
    trained: dict[Path, tuple[str | None, dict]] = {}
    for ref in refs:
        run = run_of(ref.path)
        if run is not None:
            trained[run] = _trained_thinking(run)
    prompt, prompt_notes = _setting(("system prompt", "system prompts"), spec.system_prompt,
                                    {run: values[0] for run, values in trained.items()}, "--system-prompt")
    options, option_notes = _setting(("chat template options", "chat template options"), spec.chat_template_kwargs,
                                     {run: values[1] for run, values in trained.items()}, "--chat-template-kwarg")
    return ThinkingProtocol(system=prompt, chat_template_kwargs=options or {}), prompt_notes + option_notes


def _setting(names: tuple[str, str], given, trained: dict, flag: str):
    """``(value, notes)`` of one protocol setting: the spec's where given, else the one the runs trained with.

    ``names``: the setting, singular and plural; a note says which run's value is used, unless it is no
    value at all (None, or no options).
    """
    what, plural = names
    if given is not None:
        return given, [f"{run}: trained with {what} {value!r}, swept with the spec's {given!r}"
                       for run, value in trained.items() if value != given]
    values = {json.dumps(value, sort_keys=True) for value in trained.values()}
    if len(values) > 1:
        listed = ", ".join(f"{run} {value!r}" for run, value in trained.items())
        raise ValueError(f"the runs were trained with different {plural} ({listed}); sweep each into its "
                         f"own --out, or pass {flag} to ask them all one way")
    value = next(iter(trained.values())) if trained else None
    notes = [f"{what} {value!r}: the one {', '.join(map(str, trained))} trained with"] \
        if value is not None and value != {} else []
    return value, notes


def _trained_thinking(run: Path) -> tuple[str | None, dict]:
    """The system prompt and chat template options ``run`` trained with (its run.json), checked."""
    recipe = recorded_recipe(run) or {}
    thinking = recipe.get("thinking")
    thinking = thinking if isinstance(thinking, dict) else {}
    prompt, options = thinking.get("system_prompt"), thinking.get("chat_template_kwargs") or {}
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f"{run}/run.json records thinking.system_prompt={prompt!r}, not a string; "
                         "fix the file, or pass --system-prompt")
    try:
        check_template_kwargs(options)
    except ValueError as err:
        raise ValueError(f"{run}/run.json records thinking.chat_template_kwargs that cannot be used ({err}); fix "
                         "the file, or pass --chat-template-kwarg") from None
    return prompt, options
