"""Step-wise batched generation with Hugging Face transformers, reusing each episode's KV cache.

This is rsim's default reasoner backend (CPU and CUDA). The interface and the stopping and
log-probability rules are those of :mod:`agents.backends.base`; this module is about doing it fast.

How a call runs:

1. Each episode's context is its remembered tokens plus the newly injected suffix (see
   ``base``). Its KV cache, kept from the previous call, covers all of those tokens except the last
   sampled one; only the uncovered tokens (the last sampled token and the injected strategy text,
   typically 20-40 tokens) go through the model.
2. The episodes' caches are stacked into one batched cache, left-padded to the longest, and the
   new tokens are left-padded the same way, so a row reads
   ``[pad | cached | pad | new]``. A 2-D attention mask hides the pads and explicit position ids
   give every real token its true position, so each row computes exactly what it would alone
   (cached keys already carry their rotary positions, so where a row sits in the batch is free).
3. A tight decode loop under ``torch.inference_mode()`` feeds one token per row per forward pass.
   The batched cache is allocated once for the whole call, so each token's keys and values are
   written in place (transformers' ``DynamicCache`` copies the whole cache at every token).
   Stopping is checked on the decoded text of each row after every token (a handful of microseconds
   against tens of milliseconds per forward). Finished rows stay in the batch with their mask
   entries off until half the batch is done, then the batch is compacted: copying the cache for every
   finished row would cost more than the wasted rows.
4. Each episode's part of the cache (its real columns only) is copied back out for the next call.

Measured on 2 CPU cores with SmolLM2-135M (``benchmarks/RESULTS.md``): step-wise generation runs at
the speed of plain ``model.generate`` for the same number of tokens, and several times faster than
re-encoding the whole context every step.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from agents.backends.base import (
    ContextLengthError,
    EpisodeKey,
    GenerationConfig,
    ReasonerBackend,
    StepOutput,
    StepRequest,
    StopReason,
    stop_reason,
)

logger = logging.getLogger(__name__)

_LayerKV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, the (keys, values) of one episode, each ``[1, kv_heads, length, head_dim]``."""


@dataclass
class _Row:
    """One episode's state during a call."""

    request: StepRequest
    reused: int
    """Context tokens taken from the episode's cache."""
    kv: _LayerKV | None
    generator: torch.Generator | None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    reason: StopReason | None = None


class TransformersBackend(ReasonerBackend):
    """Batched step-wise generation on a transformers causal LM, keeping KV caches between steps.

    Args:
        model: a causal LM (eval mode is set here); its device and dtype are used as they are.
        tokenizer: the model's tokenizer.
        full_reencode: recompute every episode's whole context at every call instead of reusing its
            KV cache. The tokens fed are the same, so outputs match; it exists to measure the saving.
        add_special_tokens: give fresh prompts the tokenizer's special tokens (see ``ReasonerBackend``).
    """

    def __init__(self, model: Any, tokenizer: Any, *, full_reencode: bool = False,
                 add_special_tokens: bool = False) -> None:
        super().__init__()
        layer_types = set(getattr(model.config.get_text_config(decoder=True), "layer_types", None) or ["full_attention"])
        if layer_types != {"full_attention"}:
            raise NotImplementedError(
                f"{type(model).__name__} uses {sorted(layer_types)} attention layers; the KV-reusing backend "
                "supports full-attention models only (Llama, Qwen2/2.5, SmolLM2, Mistral without sliding window)."
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.full_reencode = full_reencode
        self.add_special_tokens = add_special_tokens
        self._kv: dict[EpisodeKey, _LayerKV] = {}
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        text_config = model.config.get_text_config(decoder=True)
        self._n_layers = text_config.num_hidden_layers
        self._max_positions = getattr(text_config, "max_position_embeddings", None)
        # transformers 5 renamed ``past_key_values`` to ``cache``; accept either generation.
        parameters = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype | str = torch.float32, **kwargs: Any) -> TransformersBackend:
        """Resolve a model with :func:`agents.models.resolve_model` and wrap it; ``kwargs`` go to ``__init__``."""
        from agents.models import resolve_model

        model, tokenizer = resolve_model(name_or_path, device=device, dtype=dtype)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- episode bookkeeping ----------------------------------------------------------------------
    def release(self, key: EpisodeKey) -> None:
        super().release(key)
        self._kv.pop(key, None)

    def reset(self) -> None:
        super().reset()
        self._kv.clear()

    def _default_eos_token_ids(self) -> frozenset[int]:
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return frozenset(ids)

    # -- generation -------------------------------------------------------------------------------
    def _generate(self, requests: list[StepRequest], config: GenerationConfig) -> list[StepOutput]:
        eos = self.eos_token_ids(config)
        for request in requests:  # check every episode before touching any cache
            self._check_length(request, config)
        rows = [self._start_row(request) for request in requests]
        with torch.inference_mode():
            logits, cache, mask, positions = self._prefill(rows, config.max_new_tokens)
            batch = list(range(len(rows)))  # batch position -> row index
            for n_tokens in range(1, config.max_new_tokens + 1):
                tokens, logprobs = _sample(logits, config, [rows[i].generator for i in batch])
                for i, token, logprob in zip(batch, tokens.tolist(), logprobs.tolist()):
                    row = rows[i]
                    if row.reason is None:
                        row.token_ids.append(token)
                        row.logprobs.append(logprob)
                        row.reason = stop_reason(self._decode(row.token_ids), token, n_tokens, config, eos)
                running = [b for b, i in enumerate(batch) if rows[i].reason is None]
                if not running:
                    break
                if 2 * (len(batch) - len(running)) >= len(batch):
                    self._store(cache, mask, [(i, b) for b, i in enumerate(batch) if rows[i].reason is not None], rows)
                    index = torch.tensor(running, device=mask.device)
                    cache.batch_select_indices(index)
                    mask, positions, tokens = mask[index], positions[index], tokens[index]
                    batch = [batch[b] for b in running]
                # Rows that are done stay until the next compaction, their new columns masked out.
                live = torch.tensor([[rows[i].reason is None] for i in batch], dtype=mask.dtype, device=mask.device)
                mask = torch.cat([mask, live], dim=1)
                logits = self._forward(tokens[:, None], mask, positions[:, None], cache)
                positions = positions + 1
            self._store(cache, mask, [(i, b) for b, i in enumerate(batch)], rows)
        return [self._finish(row) for row in rows]

    def _check_length(self, request: StepRequest, config: GenerationConfig) -> None:
        n_context = len(request.prompt_token_ids)
        if self._max_positions is not None and n_context + config.max_new_tokens > self._max_positions:
            raise ContextLengthError(
                f"Episode {request.key!r} has {n_context} context tokens; with max_new_tokens="
                f"{config.max_new_tokens} that exceeds the model's {self._max_positions} positions. "
                "Shorten the prompt, lower max_new_tokens or end the episode."
            )

    def _start_row(self, request: StepRequest) -> _Row:
        kv = None if self.full_reencode else self._kv.pop(request.key, None)
        reused = 0
        if kv is not None:
            # At least one token must go through the model to give the next token's logits.
            reused = min(request.shared_tokens, kv[0][0].shape[2], len(request.prompt_token_ids) - 1)
        generator = None
        if request.seed is not None:
            generator = torch.Generator().manual_seed(request.seed)
        return _Row(request=request, reused=reused, kv=kv, generator=generator)

    def _prefill(self, rows: list[_Row], max_new_tokens: int) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run every row's uncached tokens; return last logits, the batched cache, mask and next positions."""
        device = self.device
        n_cached = max(row.reused for row in rows)
        n_new = max(len(row.request.prompt_token_ids) - row.reused for row in rows)
        batch = len(rows)
        input_ids = torch.full((batch, n_new), self._pad_id, dtype=torch.long)
        positions = torch.zeros((batch, n_new), dtype=torch.long)
        mask = torch.zeros((batch, n_cached + n_new), dtype=torch.long)
        for b, row in enumerate(rows):
            new = row.request.prompt_token_ids[row.reused:]
            input_ids[b, n_new - len(new):] = torch.tensor(new)
            positions[b, n_new - len(new):] = torch.arange(row.reused, row.reused + len(new))
            mask[b, n_cached - row.reused:n_cached] = 1
            mask[b, n_cached + n_new - len(new):] = 1
        # Room for the whole call: decoding then writes each token in place (see _PreallocatedLayer).
        capacity = n_cached + n_new + max_new_tokens
        cache = Cache(layers=[_PreallocatedLayer(capacity) for _ in range(self._n_layers)])
        if n_cached:
            self._load_rows(cache, rows, n_cached)
        for row in rows:
            row.kv = None  # the batched cache holds the reused part now
        mask, positions = mask.to(device), positions.to(device)
        logits = self._forward(input_ids.to(device), mask, positions, cache)
        return logits, cache, mask, positions[:, -1] + 1

    @staticmethod
    def _load_rows(cache: Any, rows: list[_Row], n_cached: int) -> None:
        """Write every row's reused keys/values, right-aligned, into the cache's first ``n_cached`` columns."""
        template = next(row.kv for row in rows if row.kv is not None and row.reused)
        for index, layer in enumerate(cache.layers):
            layer.allocate(len(rows), *template[index])
            for b, row in enumerate(rows):
                if row.reused:
                    row_keys, row_values = row.kv[index]
                    layer.key_buffer[b, :, n_cached - row.reused:n_cached] = row_keys[0, :, :row.reused]
                    layer.value_buffer[b, :, n_cached - row.reused:n_cached] = row_values[0, :, :row.reused]
            layer.set_length(n_cached)

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1, **{self._cache_kwarg: cache})
        return out.logits[:, -1].float()

    def _store(self, cache: Any, mask: torch.Tensor, rows_at: Sequence[tuple[int, int]], rows: list[_Row]) -> None:
        """Copy the real columns of batch rows out of the batched cache into the episodes' own caches."""
        if self.full_reencode:
            return
        for i, b in rows_at:
            columns = mask[b].nonzero().squeeze(1)
            self._kv[rows[i].request.key] = [
                (layer.keys[b:b + 1, :, columns], layer.values[b:b + 1, :, columns]) for layer in cache.layers
            ]

    def _finish(self, row: _Row) -> StepOutput:
        assert row.reason is not None
        text_ids = row.token_ids[:-1] if row.reason == "eos" else row.token_ids
        return StepOutput(text=self._decode(text_ids), token_ids=row.token_ids, logprobs=row.logprobs,
                          stop_reason=row.reason, prompt_token_ids=row.request.prompt_token_ids,
                          cached_tokens=row.reused)

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, prompts: Sequence[str | Sequence[int]], continuations: Sequence[str | Sequence[int]], *,
              temperature: float = 1.0) -> list[torch.Tensor]:
        """Log-probabilities of each continuation's tokens given its prompt, in one batched forward pass.

        Items may be texts (tokenised as a fresh prompt and a suffix) or token-id lists, e.g.
        ``StepOutput.prompt_token_ids`` and ``StepOutput.token_ids`` to re-score generated steps.
        Returns one float32 CPU tensor per pair, ``log softmax(logits / temperature)`` at each token
        (the same definition as ``StepOutput.logprobs``; pass ``temperature=1.0`` for greedy steps).
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"Got {len(prompts)} prompts but {len(continuations)} continuations.")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        pairs = [(self._ids(p, at_start=True), self._ids(c, at_start=False)) for p, c in zip(prompts, continuations)]
        if any(not p for p, _ in pairs):
            raise ValueError("Every prompt needs at least one token.")
        if not pairs:
            return []
        length = max(len(p) + len(c) for p, c in pairs)
        keep = max(len(c) for _, c in pairs) + 1
        input_ids = torch.full((len(pairs), length), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(pairs), length), dtype=torch.long)
        for b, (p, c) in enumerate(pairs):
            input_ids[b, length - len(p) - len(c):] = torch.tensor(p + c)
            mask[b, length - len(p) - len(c):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=False, logits_to_keep=keep)
            logprobs = torch.log_softmax(out.logits.float() / temperature, dim=-1).cpu()
        result = []
        for b, (_, c) in enumerate(pairs):
            # logits at column t predict token t + 1; the last column predicts nothing we score.
            predicting = logprobs[b, keep - 1 - len(c):keep - 1]
            result.append(predicting.gather(1, torch.tensor(c, dtype=torch.long)[:, None]).squeeze(1))
        return result

    def _ids(self, item: str | Sequence[int], *, at_start: bool) -> list[int]:
        return self._encode(item, at_start=at_start) if isinstance(item, str) else [int(t) for t in item]


class _PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live in buffers sized for the whole call.

    ``DynamicLayer`` appends with ``torch.cat``, which copies the layer's entire cache at every token:
    O(context) memory traffic per token and layer, a large share of CPU decoding time once contexts
    reach a few hundred tokens (as rSIM episodes do). A call knows its final length in advance
    (reused context + new tokens + ``max_new_tokens``), so this layer writes each token in place and
    hands attention a view of the filled part.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def allocate(self, batch: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Create zeroed buffers for ``batch`` rows, shaped (heads, head_dim) and typed like ``keys``/``values``."""
        super().lazy_initialization(keys, values)
        self.key_buffer = keys.new_zeros((batch, keys.shape[1], self.capacity, keys.shape[3]))
        self.value_buffer = values.new_zeros((batch, values.shape[1], self.capacity, values.shape[3]))
        self.set_length(0)

    def set_length(self, length: int) -> None:
        self.length = length
        self.keys = self.key_buffer[:, :, :length]
        self.values = self.value_buffer[:, :, :length]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.allocate(key_states.shape[0], key_states, value_states)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV buffer overflow ({end} > {self.capacity} tokens); this is a bug in rsim.")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.set_length(end)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.set_length(self.length)


def _sample(logits: torch.Tensor, config: GenerationConfig,
            generators: Sequence[torch.Generator | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return the tokens and their log-probabilities (see ``base``)."""
    if config.greedy:
        tokens = logits.argmax(dim=-1)
        logprobs = torch.log_softmax(logits, dim=-1)
        return tokens, logprobs.gather(1, tokens[:, None]).squeeze(1)
    logprobs = torch.log_softmax(logits / config.temperature, dim=-1)
    probs = logprobs.exp()
    order = None
    if config.top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p: the most likely token always survives.
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= config.top_p, 0.0)
    # Inverse-CDF sampling from one uniform draw per row, so that each row can own its generator.
    if all(g is not None for g in generators):
        uniform = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators])
    else:
        uniform = torch.rand(len(generators), dtype=torch.float64)
    cdf = probs.double().cumsum(dim=-1)
    uniform = uniform.to(cdf.device) * cdf[:, -1]
    picks = torch.searchsorted(cdf, uniform[:, None], right=True).clamp(max=cdf.shape[1] - 1)
    tokens = (order.gather(1, picks) if order is not None else picks).squeeze(1)
    return tokens, logprobs.gather(1, tokens[:, None]).squeeze(1)
