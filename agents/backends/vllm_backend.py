"""The reasoner backend on vLLM (GPU; ``pip install 'rsim[vllm]'``), behind the interface of ``base``.

vLLM schedules the batch itself and, with prefix caching on, finds an episode's earlier KV blocks by
hashing its token prefix, so this backend only has to hand it each episode's full context as token
ids (the same context bookkeeping as the transformers backend, see ``base``) and map the results
back. ``vllm`` is imported when the backend is built, never at module import.

Differences from :class:`~agents.backends.transformers_backend.TransformersBackend`, all documented
consequences of vLLM's design:

* vLLM stops by itself at the delimiter, the end-of-sequence ids and the token cap; a final answer
  has no vLLM stop rule, so the generated tokens are cut afterwards at the first token where the
  shared stop rules (``base.stop_reason``) fire. The result is what streaming checks would give; the
  tokens after the cut were computed for nothing.
* Log-probabilities come from vLLM's sampler. The engine is started with
  ``logprobs_mode="processed_logprobs"`` where the installed vLLM has it, which is
  ``log softmax(logits / T)`` as in ``base`` when ``top_p == 1``; with ``top_p < 1`` vLLM's values are
  renormalised over the nucleus. Older vLLM versions return raw (``T = 1``) log-probabilities.
* With a seed, each request carries its own per-episode seed, so samples are reproducible, but vLLM's
  random streams differ from torch's: the two backends sample different tokens from the same seed.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from agents.backends.base import GenerationConfig, ReasonerBackend, StepOutput, StepRequest, StopReason, stop_reason

logger = logging.getLogger(__name__)


class VLLMUnavailableError(ImportError):
    """vLLM is not installed, or there is no CUDA device for it."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise VLLMUnavailableError(
            "The vLLM backend needs the vllm package and a CUDA GPU: `pip install 'rsim[vllm]'`. "
            "On a CPU-only machine use TransformersBackend instead."
        ) from error
    return vllm


class VLLMBackend(ReasonerBackend):
    """Batched step-wise generation with ``vllm.LLM`` and automatic prefix caching.

    Args:
        model: a name or path as for :func:`agents.models.resolve_model` (``"smollm2-135m-instruct"``,
            ``"tiny-random"``, a folder, a Hub id).
        dtype: vLLM's ``dtype`` (``"auto"``, ``"bfloat16"``, ``"float32"``, ...).
        gpu_memory_utilization: share of GPU memory vLLM may take (weights plus KV cache).
        add_special_tokens: give fresh prompts the tokenizer's special tokens (see ``ReasonerBackend``).
        **engine_kwargs: passed to ``vllm.LLM`` (``max_model_len``, ``tensor_parallel_size``, ...).
    """

    def __init__(self, model: str | os.PathLike[str], *, dtype: str = "auto", gpu_memory_utilization: float = 0.5,
                 add_special_tokens: bool = False, **engine_kwargs: Any) -> None:
        super().__init__()
        vllm = _import_vllm()
        from agents.models import model_location

        engine_kwargs.setdefault("enable_prefix_caching", True)
        if "logprobs_mode" in getattr(vllm.EngineArgs, "__dataclass_fields__", {}):
            engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        else:
            logger.warning("This vLLM has no logprobs_mode; its log-probabilities ignore the temperature.")
        self.llm = vllm.LLM(model=model_location(model), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                            **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.add_special_tokens = add_special_tokens
        self._vllm = vllm

    def _default_eos_token_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        generation_eos = self.llm.llm_engine.model_config.hf_config.eos_token_id
        ids.update([generation_eos] if isinstance(generation_eos, int) else (generation_eos or []))
        return frozenset(ids)

    def _generate(self, requests: list[StepRequest], config: GenerationConfig) -> list[StepOutput]:
        from vllm.inputs import TokensPrompt

        eos = self.eos_token_ids(config)
        params = [
            self._vllm.SamplingParams(
                n=1, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                seed=request.seed, stop=[config.delimiter] if config.delimiter else None,
                include_stop_str_in_output=True, stop_token_ids=sorted(eos), ignore_eos=True, logprobs=0,
                skip_special_tokens=False, spaces_between_special_tokens=False,
            )
            for request in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=request.prompt_token_ids) for request in requests]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        outputs = []
        for request, result in zip(requests, results):
            completion = result.outputs[0]
            token_ids = list(completion.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs, token_ids)]
            n, reason = self._first_stop(token_ids, config, eos)
            text_ids = token_ids[:n - 1] if reason == "eos" else token_ids[:n]
            outputs.append(StepOutput(
                text=self._decode(text_ids), token_ids=token_ids[:n], logprobs=logprobs[:n], stop_reason=reason,
                prompt_token_ids=request.prompt_token_ids, cached_tokens=int(getattr(result, "num_cached_tokens", 0) or 0),
            ))
        return outputs

    def _first_stop(self, token_ids: list[int], config: GenerationConfig, eos: frozenset[int]) -> tuple[int, StopReason]:
        """The length at which the shared stop rules end the step, and why."""
        for n in range(1, len(token_ids) + 1):
            reason = stop_reason(self._decode(token_ids[:n]), token_ids[n - 1], n, config, eos)
            if reason is not None:
                return n, reason
        # vLLM ended early for a reason of its own (e.g. the model's context length): report the cap.
        return len(token_ids), "max_tokens"
