"""The reasoner-backend interface: generate the next chain-of-thought step for a batch of episodes.

An rSIM rollout advances many episodes in lockstep. At every reasoner turn each episode's prompt is
its previous prompt, plus the step the reasoner just wrote, plus the strategy text the planner
injected. A backend receives that batch as ``{key: prompt_text}`` (the key identifies the episode,
e.g. its index in the rollout) and returns ``{key: StepOutput}``::

    backend = TransformersBackend.from_pretrained("smollm2-135m-instruct")
    config = GenerationConfig(max_new_tokens=128, temperature=0.7, seed=0)
    out = backend.generate_step({0: prompt_a, 1: prompt_b}, config)
    prompt_a += out[0].text + "[strategy: verification] ...\\n"   # next turn continues the episode
    ...
    backend.release(0)                                            # episode 0 is over

**Continuing an episode.** The backend remembers, per key, the text it last saw (prompt + generated
step) and the tokens of that text. When the next prompt *starts with* that text, only the new suffix
is tokenised and appended to the remembered tokens; the transformers backend also keeps the
episode's KV cache, so only the suffix is run through the model. Any other prompt is tokenised from
scratch (the tokens it shares with the remembered ones are still reused from the cache). An
episode's token ids are therefore the tokens the model really conditioned on and produced, not a
re-tokenisation of the text: RL losses must be computed on exactly these (``StepOutput.prompt_token_ids``
+ ``StepOutput.token_ids``).

**Stopping.** A step ends at the first generated token after which one of these holds, checked in
this order: the token is an end-of-sequence token (``"eos"``); the step's text states a final answer
(``"answer"``, see :data:`DEFAULT_ANSWER_PATTERNS`); the step's text contains the step delimiter
(``"delimiter"``, ``"\\n\\n"`` by default: a blank line separates steps); ``max_new_tokens`` tokens were
generated (``"max_tokens"``). Only the step's own text is searched, never the prompt.

**Log-probabilities.** ``StepOutput.logprobs[i]`` is ``log softmax(logits / T)[token_ids[i]]`` with
``T = temperature`` (``T = 1`` when decoding greedily), computed from the model's raw logits, *before*
top-p truncation. This is what TRL's GRPO computes (logits divided by the temperature), so ratios
against a training-time forward pass are 1 for an unchanged policy.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

StopReason = Literal["delimiter", "answer", "eos", "max_tokens"]
"""Why a step ended; see the module docstring for the order in which the rules are checked."""

EpisodeKey = Hashable
"""Identifies an episode across calls (an int index, a string id, ...)."""

DEFAULT_DELIMITER = "\n\n"
"""Steps are separated by a blank line, as in the rSIM environment's reasoner prompt."""

DEFAULT_ANSWER_PATTERNS: tuple[str, ...] = (
    # \boxed{...} with its braces closed, nested up to three levels (\boxed{\frac{\sqrt{2}}{2}}).
    r"\\boxed\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}",
    # "The answer is 42." / "Final answer: 42" once the sentence or line is finished: without the
    # terminator a streaming check could not tell "3." from "3.5".
    r"(?i)\b(?:the (?:final )?answer is|final answer\s*:)\s*[^\s.][^\n]*?(?:[.!](?=\s)|\n)",
    # GSM8K's "#### 42" once its line is finished.
    r"####\s*[^\s#][^\n]*\n",
)
"""Regular expressions that mark a finished final answer in a step's text."""


@dataclass(frozen=True)
class GenerationConfig:
    """How one reasoner step is generated. The defaults suit an rSIM rollout with a small model."""

    max_new_tokens: int = 256
    """Most tokens generated for one step (the step ends with ``stop_reason="max_tokens"``)."""
    temperature: float = 1.0
    """Sampling temperature; ``0.0`` decodes greedily (argmax)."""
    top_p: float = 1.0
    """Nucleus sampling: sample only from the smallest set of tokens whose probability reaches ``top_p``."""
    delimiter: str | None = DEFAULT_DELIMITER
    """Text that ends a step once it appears in the step's text; ``None`` disables the rule."""
    stop_at_answer: bool = True
    """End the step as soon as it states a final answer (one of ``answer_patterns`` matches)."""
    answer_patterns: tuple[str, ...] = DEFAULT_ANSWER_PATTERNS
    """Regular expressions that recognise a finished final answer."""
    eos_token_ids: tuple[int, ...] | None = None
    """Tokens that end the step with ``stop_reason="eos"``; ``None`` uses the model's end-of-sequence ids."""
    seed: int | None = None
    """With a seed, every episode samples from its own generator seeded by (seed, key, step number), so
    a step's sample does not depend on which other episodes share the batch. ``None``: torch's global RNG."""

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}.")
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature!r}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if self.delimiter is not None and (not isinstance(self.delimiter, str) or not self.delimiter):
            raise ValueError(f"delimiter must be a non-empty string or None, got {self.delimiter!r}.")
        for pattern in self.answer_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"answer pattern {pattern!r} is not a valid regular expression: {error}") from error

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (``temperature == 0``)."""
        return self.temperature == 0.0


@dataclass(frozen=True)
class StepOutput:
    """One generated step of one episode."""

    text: str
    """The step's text: the decoding of ``token_ids`` without a final end-of-sequence token. It ends
    with the delimiter when ``stop_reason == "delimiter"``."""
    token_ids: list[int]
    """The sampled tokens, including a final end-of-sequence token (its choice is part of the policy)."""
    logprobs: list[float]
    """Log-probability of each sampled token (see the module docstring for the exact definition)."""
    stop_reason: StopReason
    """Why the step ended."""
    prompt_token_ids: list[int] = field(repr=False)
    """The tokens the step was conditioned on: the episode's whole context before this step."""
    cached_tokens: int = 0
    """How many of ``prompt_token_ids`` were served from a cache instead of being recomputed."""


def has_final_answer(text: str, patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS) -> bool:
    """Whether ``text`` contains a finished final answer according to ``patterns``."""
    return any(re.search(pattern, text) for pattern in patterns)


def stop_reason(step_text: str, last_token: int, n_tokens: int, config: GenerationConfig,
                eos_token_ids: frozenset[int]) -> StopReason | None:
    """Why a step whose ``n_tokens`` tokens so far decode to ``step_text`` must end now, or ``None``."""
    if last_token in eos_token_ids:
        return "eos"
    if config.stop_at_answer and has_final_answer(step_text, config.answer_patterns):
        return "answer"
    if config.delimiter is not None and config.delimiter in step_text:
        return "delimiter"
    if n_tokens >= config.max_new_tokens:
        return "max_tokens"
    return None


def episode_seed(seed: int, key: EpisodeKey, step: int) -> int:
    """A 63-bit seed for one episode's step, stable across processes (unlike ``hash(str)``)."""
    digest = hashlib.blake2b(f"{seed}|{key!r}|{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class EpisodeContext:
    """What a backend remembers about an episode between steps."""

    text: str
    """The last prompt plus the step generated for it."""
    token_ids: list[int]
    """The tokens of ``text`` as the model saw and produced them (no trailing end-of-sequence token)."""
    steps: int
    """How many steps were generated for the episode."""


@dataclass(frozen=True)
class StepRequest:
    """One episode's share of a batched call, prepared by :class:`ReasonerBackend`."""

    key: EpisodeKey
    prompt: str
    prompt_token_ids: list[int]
    """The context to generate from (see "Continuing an episode" in the module docstring)."""
    shared_tokens: int
    """How many leading ``prompt_token_ids`` equal the episode's remembered tokens (KV reusable)."""
    seed: int | None
    """This step's own sampling seed, or ``None`` for torch's global RNG."""


class ContextLengthError(ValueError):
    """A prompt plus ``max_new_tokens`` does not fit in the model's context window."""


class ReasonerBackend(ABC):
    """Base class of the LLM backends: episode bookkeeping here, generation in subclasses.

    Subclasses set ``self.tokenizer`` and implement :meth:`_generate`.
    """

    tokenizer: object
    add_special_tokens: bool = False
    """Whether a fresh prompt gets the tokenizer's special tokens (BOS); off because prompts built from
    a chat template already contain them. Suffixes never get them."""

    def __init__(self) -> None:
        self._contexts: dict[EpisodeKey, EpisodeContext] = {}

    def generate_step(self, prompts: Mapping[EpisodeKey, str],
                      config: GenerationConfig | None = None) -> dict[EpisodeKey, StepOutput]:
        """Generate the next step of every episode in ``prompts`` (one batched call).

        Args:
            prompts: episode key -> the episode's full current prompt text.
            config: sampling and stopping rules (default: ``GenerationConfig()``).

        Returns:
            episode key -> its :class:`StepOutput`, in the order of ``prompts``.
        """
        config = config or GenerationConfig()
        if not isinstance(prompts, Mapping):
            raise TypeError(f"prompts must be a mapping of episode key -> prompt text, got {type(prompts).__name__}.")
        requests = [self._prepare(key, prompt, config) for key, prompt in prompts.items()]
        if not requests:
            return {}
        outputs = self._generate(requests, config)
        for request, output in zip(requests, outputs):
            previous = self._contexts.get(request.key)
            self._contexts[request.key] = EpisodeContext(
                text=request.prompt + output.text,
                token_ids=request.prompt_token_ids + self._context_tokens(output),
                steps=(previous.steps if previous else 0) + 1,
            )
        return {request.key: output for request, output in zip(requests, outputs)}

    def release(self, key: EpisodeKey) -> None:
        """Forget an episode (its remembered tokens and any cache); unknown keys are ignored."""
        self._contexts.pop(key, None)

    def reset(self) -> None:
        """Forget every episode."""
        self._contexts.clear()

    def context_token_ids(self, key: EpisodeKey) -> list[int]:
        """The tokens of an episode's remembered context (last prompt + last step); empty if unknown."""
        context = self._contexts.get(key)
        return list(context.token_ids) if context else []

    def eos_token_ids(self, config: GenerationConfig) -> frozenset[int]:
        """The tokens that end a step under ``config``."""
        if config.eos_token_ids is not None:
            return frozenset(config.eos_token_ids)
        return self._default_eos_token_ids()

    @abstractmethod
    def _default_eos_token_ids(self) -> frozenset[int]:
        """The model's own end-of-sequence ids."""

    @abstractmethod
    def _generate(self, requests: list[StepRequest], config: GenerationConfig) -> list[StepOutput]:
        """Generate one step per request, in order."""

    def _encode(self, text: str, *, at_start: bool) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=at_start and self.add_special_tokens)["input_ids"])

    def _decode(self, token_ids: Sequence[int]) -> str:
        # No clean-up and no skipping: the text must round-trip into the next prompt unchanged.
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _context_tokens(self, output: StepOutput) -> list[int]:
        """The step's tokens that stay in the episode's context: all but a final end-of-sequence token."""
        if output.stop_reason == "eos":
            return output.token_ids[:-1]
        return output.token_ids

    def _prepare(self, key: EpisodeKey, prompt: str, config: GenerationConfig) -> StepRequest:
        if not isinstance(prompt, str):
            raise TypeError(f"The prompt of episode {key!r} must be a str, got {type(prompt).__name__}.")
        previous = self._contexts.get(key)
        if previous is not None and prompt.startswith(previous.text):
            token_ids = previous.token_ids + self._encode(prompt[len(previous.text):], at_start=False)
            shared = len(previous.token_ids)
        else:
            token_ids = self._encode(prompt, at_start=True)
            shared = _common_prefix_length(previous.token_ids, token_ids) if previous else 0
        if not token_ids:
            raise ValueError(f"The prompt of episode {key!r} is empty; a step needs at least one prompt token.")
        seed = None if config.seed is None else episode_seed(config.seed, key, previous.steps if previous else 0)
        return StepRequest(key=key, prompt=prompt, prompt_token_ids=token_ids, shared_tokens=shared, seed=seed)


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
