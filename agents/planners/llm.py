"""The LLM planner: a causal LM reads the strategy list, the question and the steps so far.

The prompt (see :meth:`LLMPlanner.prompt`) starts with the planner's role and the numbered strategy
list (``1. self_reflection: <its prompt>`` ...), then the planner observation's text (question and
steps so far), then ``Next strategy number:``. With a tokenizer that has a chat template
(SmolLM2-Instruct, Qwen2.5-Instruct) role and list form the system turn and the observation the user
turn, and the answer is the assistant's first token; without one the prompt is plain text. The list
comes first because it is the same in every prompt: its KV cache is computed once per call and
shared by the batch, which saves about half the planner's compute with the default set.

One batched forward pass over the rest (left padding after the shared prefix, explicit position ids
so padding does not shift positions) gives the last position's output, and from it a distribution
over strategies:

* ``head="labels"`` (default, as in the paper): the next-token logits of the label tokens ``1`` ..
  ``n``. An instruction-tuned LM already has a sensible zero-shot preference, and training sharpens
  it. Each label must be a single token right after the prompt; that is checked when the planner is
  built. With more than nine strategies the labels are the letters ``A`` .. ``Z`` (``10`` is two
  tokens in most tokenizers).
* ``head="linear"``: a linear layer on the last hidden state, initialised to zero, so the initial
  policy is uniform over the legal strategies and nothing depends on label tokenisation.

The logits are divided by ``temperature``, masked with the observation's ``action_mask`` and
log-softmaxed; :meth:`LLMPlanner.act` samples (seeded generator) or takes the argmax, under
``torch.inference_mode``. :meth:`LLMPlanner.logprobs_and_entropy` is the same computation with
gradients, for GRPO/PPO; :meth:`LLMPlanner.value` is a zero-initialised value head for PPO.

``lora_r`` wraps the model with ``peft`` LoRA adapters on the attention projections, so only the
adapters (and the heads) train. :meth:`LLMPlanner.save` writes the adapters only (LoRA) or the whole
model as safetensors, the tokenizer, the heads and ``planner.json`` with the strategy set; loading it
against another set raises :class:`~agents.planners.base.StrategyMismatchError`.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import rsim_env
from agents.models import resolve_model
from agents.planners.base import (PlannerLoadError, PlannerOutput, check_strategies, legal_masks,
                                  masked_entropy, read_planner_file, write_directory_atomic)
from rsim_env.atomic import write_json_atomic
from rsim_env.errors import ConfigError, RSIMError
from rsim_env.strategies import StrategySet

if TYPE_CHECKING:
    from peft import LoraConfig

KIND = "llm"
SYSTEM_PROMPT = ("You are the planner of a step-by-step reasoning process. Read the question and the steps so far, "
                 "then choose the strategy for the next step.")
_ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_HEADS_FILE = "heads.safetensors"
_SLOT = "\x00observation\x00"


class LabelTokenError(RSIMError, ValueError):
    """The strategy labels are not single tokens for this tokenizer, so ``head="labels"`` cannot read them."""


class LLMPlanner(nn.Module):
    """A strategy policy read off a causal LM.

    Args:
        model_name_or_path: a name for :func:`agents.models.resolve_model` (``"tiny-random"``,
            ``"smollm2-135m-instruct"``, a local folder or Hub id), or a ``(model, tokenizer)`` pair.
        strategies: the strategy set (the action space and the listed labels).
        head: ``"labels"`` (label-token logits) or ``"linear"`` (zero-initialised linear layer).
        device: where the model runs; ``None`` keeps a given model where it is (``"cpu"`` for names).
        dtype: weight dtype for named models; the distribution is always computed in float32.
        temperature: divides the logits; 1.0 is the model's own distribution.
        lora_r: wrap the model with LoRA adapters of this rank on the attention projections.
        lora: a full ``peft.LoraConfig`` instead of ``lora_r``.
        seed: seeds the sampling generator (and ``"tiny-random"``'s initialisation).
        prompt_format: ``"auto"`` (chat template when the tokenizer has one), ``"chat"`` or ``"plain"``.
        base_model: the model's name for :meth:`save` when a ``(model, tokenizer)`` pair is given.

    Raises:
        LabelTokenError: ``head="labels"`` with labels that are not single tokens, or more than 26 strategies.
        ConfigError: an unknown head, prompt format or a non-positive temperature.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | tuple[Any, Any],
        strategies: StrategySet,
        *,
        head: Literal["labels", "linear"] = "labels",
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = "float32",
        temperature: float = 1.0,
        lora_r: int | None = None,
        lora: LoraConfig | None = None,
        seed: int = 0,
        prompt_format: Literal["auto", "chat", "plain"] = "auto",
        base_model: str | None = None,
    ) -> None:
        super().__init__()
        if head not in ("labels", "linear"):
            raise ConfigError(f"head must be 'labels' or 'linear', got {head!r}.")
        if prompt_format not in ("auto", "chat", "plain"):
            raise ConfigError(f"prompt_format must be 'auto', 'chat' or 'plain', got {prompt_format!r}.")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}; use act(..., greedy=True) for argmax.")
        if isinstance(model_name_or_path, tuple):
            model, tokenizer = model_name_or_path
            if device is not None:
                model = model.to(device)
            self.base_model = base_model or getattr(model, "name_or_path", "") or None
        else:
            model, tokenizer = resolve_model(model_name_or_path, device=device or "cpu", dtype=dtype, seed=seed)
            self.base_model = os.fspath(model_name_or_path)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.base_seed = seed
        self.strategies = strategies
        self.head_kind = head
        self.temperature = float(temperature)
        self.tokenizer = tokenizer
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ConfigError("prompt_format='chat' needs a tokenizer with a chat template; this one has none, so use "
                              "'plain' (or 'auto').")
        self.chat = prompt_format == "chat" or (prompt_format == "auto" and has_template)
        self.model = self._with_lora(model, lora_r, lora)
        self.device = next(self.model.parameters()).device
        hidden = self.model.config.hidden_size
        self.head = nn.Linear(hidden, len(strategies)).to(self.device) if head == "linear" else None
        self.value_head = nn.Linear(hidden, 1).to(self.device)
        with torch.no_grad():  # zero: a uniform initial policy (linear head) and a zero initial value estimate
            for layer in (self.head, self.value_head):
                if layer is not None:
                    layer.weight.zero_()
                    layer.bias.zero_()
        self.labels = self._label_names()
        self._prefix, self._closing = self._template()
        self.prompt_suffix, self.label_ids = self._label_tokens()
        self._prefix_ids = self.tokenizer(self._prefix, add_special_tokens=not self.chat)["input_ids"]
        # transformers 5 renamed ``past_key_values`` to ``cache``; accept either generation.
        base = self.model.get_base_model() if self.lora else self.model
        self._cache_kwarg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        self._generator = torch.Generator().manual_seed(seed)

    # -- construction helpers ------------------------------------------------------------------------
    @property
    def lora(self) -> bool:
        """Whether the model carries peft adapters (only they, and the heads, train)."""
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    @staticmethod
    def _with_lora(model: nn.Module, lora_r: int | None, lora: LoraConfig | None) -> nn.Module:
        if lora_r is None and lora is None:
            return model
        from peft import LoraConfig, PeftModel, get_peft_model

        if isinstance(model, PeftModel):
            raise ConfigError("The model already has peft adapters; pass lora_r/lora only for a plain model.")
        if lora is None:
            if lora_r < 1:
                raise ConfigError(f"lora_r must be >= 1, got {lora_r}.")
            linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
            # Attention projections where they have the usual names; otherwise peft's per-architecture default.
            targets = [p for p in _ATTENTION_PROJECTIONS if p in linear] or None
            lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=targets,
                              task_type="CAUSAL_LM")
        return get_peft_model(model, lora)

    def _label_names(self) -> list[str]:
        n = len(self.strategies)
        if self.head_kind == "linear" or n <= 9:
            return [str(i + 1) for i in range(n)]
        if n <= 26:
            return [chr(ord("A") + i) for i in range(n)]
        raise LabelTokenError(f"head='labels' supports at most 26 strategies, the set has {n}; use head='linear'.")

    def _template(self) -> tuple[str, str]:
        """The constant text before the observation (role and strategy list) and after it (chat closing).

        The strategy list comes first so that it is a prefix shared by every prompt (see :meth:`_forward`).
        """
        word = "number" if self.labels[0].isdigit() else "letter"
        listing = "\n".join(f"{label}. {s.name}: {s.prompt}" for label, s in zip(self.labels, self.strategies))
        system = f"{SYSTEM_PROMPT}\n\nStrategies:\n{listing}\n\nAnswer with the {word} of one strategy only."
        if not self.chat:
            return system + "\n\n", ""
        from jinja2.exceptions import TemplateError

        try:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": _SLOT}]
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError:  # templates without a system role (e.g. Gemma's)
            messages = [{"role": "user", "content": f"{system}\n\n{_SLOT}"}]
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        before, found, after = text.partition(_SLOT)
        if not found:
            raise ConfigError("The tokenizer's chat template does not keep the user message verbatim; build the "
                              "planner with prompt_format='plain'.")
        return before, after

    def _body(self, observation: Mapping[str, Any]) -> str:
        word = "number" if self.labels[0].isdigit() else "letter"
        return f"{observation['text'].rstrip()}\n\nNext strategy {word}:{self._closing}"

    def _label_tokens(self) -> tuple[str, list[int]]:
        """The text closing every prompt and the label token ids (``head="labels"`` only).

        A label counts as one token if appending it to a real prompt adds exactly one token and leaves
        the prompt's tokens unchanged. Candidate splits, most natural first: the label with a leading
        space (plain text after ``:``), the space in the prompt and the bare label (SmolLM2 splits
        ``" 3"`` into two tokens), the bare label (chat: right after the assistant header).
        """
        if self.head_kind == "linear":
            return "", []
        reference = self._body({"text": "Question: 1 + 1?\n\nSteps so far:\n"})
        candidates = [("", ""), ("", " "), (" ", "")] if self.chat else [("", " "), (" ", ""), ("", "")]
        for suffix, space in candidates:
            base = self._ids(reference + suffix)
            ids = []
            for label in self.labels:
                extended = self._ids(reference + suffix + space + label)
                if len(extended) != len(base) + 1 or extended[:-1] != base:
                    break
                ids.append(extended[-1])
            if len(ids) == len(self.labels) and len(set(ids)) == len(ids):
                return suffix, ids
        raise LabelTokenError(
            f"The labels {self.labels} are not single, distinct tokens after the prompt for this tokenizer, so their "
            "logits cannot be read. Use head='linear' (a learned linear layer on the last hidden state).")

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- the prompt ----------------------------------------------------------------------------------
    def prompt(self, observation: Mapping[str, Any]) -> str:
        """The text the model reads for one planner observation (chat-formatted when ``self.chat``).

        The model gets it in two parts, tokenised separately: the constant prefix (role and strategy
        list) and the rest (the observation, ``Next strategy number:`` and the chat closing).
        """
        return self._prefix + self._suffix(observation)

    def _suffix(self, observation: Mapping[str, Any]) -> str:
        return self._body(observation) + self.prompt_suffix

    # -- distributions -------------------------------------------------------------------------------
    def _forward(self, observations: Sequence[Mapping[str, Any]], *, hidden: bool) -> Any:
        """One batched forward pass over the observations; the output's last position is the decision."""
        enc = self.tokenizer([self._suffix(o) for o in observations], padding=True, padding_side="left",
                             return_tensors="pt", add_special_tokens=False).to(self.device)
        mask, batch = enc["attention_mask"], len(observations)
        # The role and strategy list (about 250 tokens with the default set) are the same in every prompt:
        # encode them once, as one row, and share their KV cache across the batch. Recomputed per call, so a
        # training step that changed the weights never meets a stale cache, and gradients reach the prefix.
        prefix = torch.tensor([self._prefix_ids], device=self.device)
        out = self.model(input_ids=prefix, use_cache=True, logits_to_keep=1)
        cache = out.cache if "cache" in out else out.past_key_values
        cache.batch_repeat_interleave(batch)
        # Left padding sits between prefix and text; positions count real tokens only, so a row's result does
        # not depend on the rows it is batched with.
        attention = torch.cat([torch.ones(batch, prefix.shape[1], dtype=mask.dtype, device=self.device), mask], 1)
        positions = prefix.shape[1] + (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=enc["input_ids"], attention_mask=attention, position_ids=positions,
                          use_cache=True, logits_to_keep=1, output_hidden_states=hidden, **{self._cache_kwarg: cache})

    def _log_probs(self, observations: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Masked log-probabilities ``[B, n]`` (float32, -inf where masked), differentiable."""
        masks = torch.from_numpy(legal_masks(observations, len(self.strategies))).to(self.device)
        out = self._forward(observations, hidden=self.head is not None)
        if self.head is None:
            logits = out.logits[:, -1, self.label_ids].float()
        else:
            logits = self.head(out.hidden_states[-1][:, -1].float())
        logits = (logits / self.temperature).masked_fill(~masks, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def probabilities(self, observations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The policy's ``(B, n)`` distribution over strategies (0 where masked), for inspection."""
        with torch.inference_mode():
            return self._log_probs(observations).exp().cpu().numpy()

    # -- the Planner interface -----------------------------------------------------------------------
    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        """Sample (or, with ``greedy``, take the argmax of) one legal strategy per observation."""
        with torch.inference_mode():
            log_probs = self._log_probs(observations).cpu()
            if greedy:
                actions = log_probs.argmax(-1)
            else:
                actions = torch.multinomial(log_probs.exp(), 1, generator=self._generator).squeeze(-1)
            chosen = log_probs.gather(-1, actions[:, None]).squeeze(-1)
            return PlannerOutput(actions=actions.numpy().astype(np.int64), logprobs=chosen.numpy().astype(float),
                                 entropy=masked_entropy(log_probs).numpy().astype(float))

    def logprobs_and_entropy(self, observations: Sequence[Mapping[str, Any]],
                             actions: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable ``log pi(action | obs)`` and the policy's entropy per observation (``[B]`` each)."""
        log_probs = self._log_probs(observations)
        actions = torch.as_tensor(actions, dtype=torch.long, device=log_probs.device)
        return log_probs.gather(-1, actions[:, None]).squeeze(-1), masked_entropy(log_probs)

    def value(self, observations: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """The value head's estimate per observation (``[B]``, differentiable; for PPO)."""
        out = self._forward(observations, hidden=True)
        return self.value_head(out.hidden_states[-1][:, -1].float()).squeeze(-1)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the sampling generator."""
        if seed is not None:
            self._generator.manual_seed(seed)

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Learning happens in the trainer's gradient steps, not here."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimiser should update: adapters (LoRA) or the whole model, plus the heads."""
        return [p for p in self.parameters() if p.requires_grad]

    # -- saving --------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the planner into ``directory`` at once (see :func:`~agents.planners.base.write_directory_atomic`).

        Layout: ``planner.json``; ``adapter/`` (LoRA: peft adapters and the tokenizer) or ``model/`` (the
        full model in safetensors and the tokenizer, a folder any transformers loader reads);
        ``heads.safetensors`` (value head, and the linear head when used).

        Raises:
            ConfigError: a LoRA planner whose base model has no name or path to reload it from.
        """
        from safetensors.torch import save_file

        if self.lora and not self.base_model:
            raise ConfigError("This LoRA planner was built from a (model, tokenizer) pair without a name, so its "
                              "adapters could not be reloaded; pass base_model='<name or path>' when building it.")
        weights = "adapter" if self.lora else "model"
        heads = {f"value_head.{k}": v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()}
        if self.head is not None:
            heads.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()})
        meta = {
            "kind": KIND, "head": self.head_kind, "weights": weights, "base_model": self.base_model,
            "base_seed": self.base_seed, "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "temperature": self.temperature, "prompt_format": "chat" if self.chat else "plain",
            "labels": self.labels, "strategies": self.strategies.to_dict(),
            "fingerprint": self.strategies.fingerprint(), "rsim_version": rsim_env.__version__,
        }

        def build(tmp: Path) -> None:
            self.model.save_pretrained(tmp / weights)
            self.tokenizer.save_pretrained(tmp / weights)
            save_file(heads, tmp / _HEADS_FILE)
            write_json_atomic(tmp / "planner.json", meta)

        return write_directory_atomic(directory, build)

    @classmethod
    def load(cls, directory: str | Path, strategies: StrategySet | None = None, *,
             device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None) -> LLMPlanner:
        """Load a planner written by :meth:`save`.

        Args:
            directory: the saved planner.
            strategies: the environment's set; must equal the saved one when given.
            device: where the model runs.
            dtype: weight dtype; by default the dtype it was saved with.

        Raises:
            StrategyMismatchError: ``strategies`` differs from the set the planner was trained with.
            PlannerLoadError: the directory holds no LLM planner.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = read_planner_file(directory)
        if meta["kind"] != KIND:
            raise PlannerLoadError(f"{str(directory)!r} holds a {meta['kind']!r} planner, not an LLM planner; "
                                   "load it with agents.planners.load_planner.")
        saved = check_strategies(StrategySet.from_dict(meta["strategies"]), strategies, directory)
        dtype = dtype or meta["dtype"]
        if meta["weights"] == "adapter":
            from peft import PeftModel
            from transformers import AutoTokenizer

            model, _ = resolve_model(meta["base_model"], device=device, dtype=dtype, seed=meta["base_seed"])
            model = PeftModel.from_pretrained(model, directory / "adapter", is_trainable=True)
            tokenizer = AutoTokenizer.from_pretrained(directory / "adapter")
        else:
            model, tokenizer = resolve_model(directory / "model", device=device, dtype=dtype)
        planner = cls((model, tokenizer), saved, head=meta["head"], device=device, temperature=meta["temperature"],
                      prompt_format=meta["prompt_format"], base_model=meta["base_model"], seed=meta["base_seed"])
        heads = load_file(directory / _HEADS_FILE, device=str(planner.device))
        planner.value_head.load_state_dict({k.removeprefix("value_head."): v for k, v in heads.items()
                                            if k.startswith("value_head.")})
        if planner.head is not None:
            planner.head.load_state_dict({k.removeprefix("head."): v for k, v in heads.items()
                                          if k.startswith("head.")})
        return planner

