"""Model resolution: the tiny random model, the embedded SmolLM2 cache, local paths and offline Hub ids."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents import models  # noqa: E402
from agents.models import (  # noqa: E402
    EMBEDDED_MODEL,
    TINY_RANDOM,
    ModelUnavailableError,
    cache_dir,
    embedded_model_dir,
    model_location,
    resolve_model,
)


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def tiny():
    return resolve_model(TINY_RANDOM)


def test_tiny_random_is_small_deterministic_and_has_the_real_tokenizer(tiny):
    model, tokenizer = tiny
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert not model.training and model.dtype == torch.float32
    assert same_weights(model, resolve_model(TINY_RANDOM)[0])
    assert not same_weights(model, resolve_model(TINY_RANDOM, seed=1)[0])
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == model.config.vocab_size == 49152
    assert tokenizer.decode(tokenizer("Step 1: 17 + 25 = 42\n\n")["input_ids"]) == "Step 1: 17 + 25 = 42\n\n"


def test_building_the_random_model_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    resolve_model(TINY_RANDOM)
    assert torch.equal(torch.rand(3), expected)


def test_dtype_and_device_are_applied():
    model, _ = resolve_model(TINY_RANDOM, dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_model(TINY_RANDOM, dtype="float33")


def test_a_local_folder_loads_through_transformers(tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    loaded, _ = resolve_model(tmp_path / "saved")
    assert same_weights(model, loaded)


def test_a_missing_local_path_names_the_alternatives(tmp_path):
    with pytest.raises(ModelUnavailableError, match="smollm2-135m-instruct"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))


def test_an_offline_hub_id_fails_fast_with_the_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as error:
        resolve_model("rsim-tests/no-such-model")
    assert time.monotonic() - start < 10
    assert all(name in str(error.value) for name in ("smollm2-135m-instruct", "tiny-random", "local"))
    assert isinstance(error.value, RuntimeError)


def test_an_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        resolve_model("rsim-tests/no-such-model")
    assert time.monotonic() - start < 10


def test_cache_dir_follows_rsim_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RSIM_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("RSIM_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "rsim")


def test_an_interrupted_conversion_leaves_no_cached_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RSIM_CACHE", str(tmp_path))

    def crash(out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models._cached_folder("thing", crash)
    assert list(tmp_path.iterdir()) == []  # neither the final folder nor the temporary one

    calls = []
    build = lambda out: (calls.append(out), (out / "weights").write_text("w"))  # noqa: E731
    first = models._cached_folder("thing", build)
    second = models._cached_folder("thing", build)
    assert first == second == tmp_path / "thing" and (first / "weights").read_text() == "w"
    assert len(calls) == 1


def test_tiny_random_location_is_a_loadable_folder(tiny):
    folder = model_location(TINY_RANDOM)
    assert folder == model_location(TINY_RANDOM) and folder.startswith(str(cache_dir()))
    assert same_weights(tiny[0], resolve_model(folder)[0])
    assert model_location("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.real_model
def test_embedded_smollm2_is_converted_once_and_cached():
    model, tokenizer = resolve_model(EMBEDDED_MODEL)
    folder = embedded_model_dir()
    assert folder.parent == cache_dir() and (folder / "config.json").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert model.config.num_hidden_layers == 30 and tokenizer.eos_token == "<|im_end|>"
    start = time.monotonic()
    again, _ = resolve_model(EMBEDDED_MODEL)
    assert time.monotonic() - start < 15
    assert same_weights(model, again)
