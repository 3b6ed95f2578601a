"""The tiny Llama model of tests/tiny_model.py: built fast and reproducibly, loaded offline by
transformers (and by mlx-lm where it is installed), with batched greedy decoding that matches
one-by-one decoding token for token."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from tokenizers import Tokenizer

from tests.tiny_model import (
    BOS_TOKEN_ID,
    CONFIG,
    ENDOFTEXT,
    EOS_TOKEN_ID,
    FILES,
    IM_END,
    IM_START,
    PAD_TOKEN_ID,
    STOP_TOKEN,
    VOCAB_SIZE,
    build_tiny_model,
    tiny_model_dir,
)

ROOT = Path(__file__).resolve().parent.parent

PROMPTS = [  # three lengths, so that the batch is left-padded
    "Hello",
    "The quick brown fox jumps over the lazy dog and",
    "Once upon a time there was a little robot who wanted to learn how to write stories",
]
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Héllo, wörld! 🙂"}]
CHATML = ("<|im_start|>system\nYou are terse.<|im_end|>\n"
          "<|im_start|>user\nHéllo, wörld! 🙂<|im_end|>\n"
          "<|im_start|>assistant\n")
ROUND_TRIP = ["", "Hello, world!", "  two  spaces\tand a tab\n\nand newlines\r\n",
              "naïve café, Übergröße, 日本語のテキスト, emoji 🙂👍🏽, Ελληνικά, עברית",
              "<|im_start|>user\nliteral special tokens<|im_end|>", "\x00\x01 control \x7f bytes"]


def _digest(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in FILES}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


# --- the files --------------------------------------------------------------------------------


def test_builds_fast_and_small(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "warm-up")  # imports and first-call costs are not the build's
    start = time.perf_counter()
    directory = build_tiny_model(tmp_path / "model")
    elapsed = time.perf_counter() - start
    assert directory == tmp_path / "model"
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    size = sum(p.stat().st_size for p in directory.iterdir())
    assert 400_000 < size < 2_000_000
    assert elapsed < 5, f"build took {elapsed:.2f} s; it takes about 0.05 s"


def test_the_build_uses_no_torch() -> None:
    code = ("import sys, tempfile; from tests.tiny_model import build_tiny_model; "
            "build_tiny_model(tempfile.mkdtemp()); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_same_seed_same_bytes_even_in_another_process(tmp_path: Path) -> None:
    first = _digest(build_tiny_model(tmp_path / "a"))
    assert _digest(build_tiny_model(tmp_path / "b")) == first
    # The tokenizer trainer runs in Rust, with its own hash maps: another process must agree too.
    code = ("import json, sys; from pathlib import Path; "
            "from tests.tiny_model import build_tiny_model; "
            "from tests.test_tiny_model import _digest; "
            "print(json.dumps(_digest(build_tiny_model(Path(sys.argv[1])))))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], cwd=ROOT,
                            check=True, capture_output=True, text=True)
    assert json.loads(result.stdout) == first
    other = _digest(build_tiny_model(tmp_path / "d", seed=1))
    assert other["model.safetensors"] != first["model.safetensors"]
    assert {k: v for k, v in other.items() if k != "model.safetensors"} == {
        k: v for k, v in first.items() if k != "model.safetensors"}


def test_config_is_a_standard_llama(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"
    assert config["torch_dtype"] == config["dtype"] == "float32"
    assert config["hidden_size"] // config["num_attention_heads"] == config["head_dim"] >= 32
    assert config["num_attention_heads"] % config["num_key_value_heads"] == 0
    assert config["max_position_embeddings"] == 512
    assert config["tie_word_embeddings"] is False
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        BOS_TOKEN_ID, EOS_TOKEN_ID, PAD_TOKEN_ID)
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (
        BOS_TOKEN_ID, EOS_TOKEN_ID, PAD_TOKEN_ID)
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"],
            tokenizer_config["pad_token"]) == (ENDOFTEXT, IM_END, ENDOFTEXT)
    special = json.loads((model_dir / "special_tokens_map.json").read_text())
    assert special["eos_token"]["content"] == IM_END


def test_weights_have_the_names_transformers_saves(model_dir: Path) -> None:
    hidden, inter = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    q_dim = CONFIG["num_attention_heads"] * CONFIG["head_dim"]
    kv_dim = CONFIG["num_key_value_heads"] * CONFIG["head_dim"]
    expected = {"model.embed_tokens.weight": (VOCAB_SIZE, hidden), "model.norm.weight": (hidden,),
                "lm_head.weight": (VOCAB_SIZE, hidden)}
    for n in range(CONFIG["num_hidden_layers"]):
        expected |= {
            f"model.layers.{n}.input_layernorm.weight": (hidden,),
            f"model.layers.{n}.post_attention_layernorm.weight": (hidden,),
            f"model.layers.{n}.self_attn.q_proj.weight": (q_dim, hidden),
            f"model.layers.{n}.self_attn.k_proj.weight": (kv_dim, hidden),
            f"model.layers.{n}.self_attn.v_proj.weight": (kv_dim, hidden),
            f"model.layers.{n}.self_attn.o_proj.weight": (hidden, q_dim),
            f"model.layers.{n}.mlp.gate_proj.weight": (inter, hidden),
            f"model.layers.{n}.mlp.up_proj.weight": (inter, hidden),
            f"model.layers.{n}.mlp.down_proj.weight": (hidden, inter),
        }
    with safe_open(model_dir / "model.safetensors", framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    assert {name: t.shape for name, t in tensors.items()} == expected
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())


# --- the tokenizer ----------------------------------------------------------------------------


def test_tokenizer_is_a_byte_level_bpe(model_dir: Path) -> None:
    spec = json.loads((model_dir / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE"
    assert spec["pre_tokenizer"]["type"] == spec["decoder"]["type"] == "ByteLevel"
    assert spec["normalizer"] is None
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == VOCAB_SIZE
    assert [tokenizer.token_to_id(t) for t in (ENDOFTEXT, IM_START, IM_END)] == [0, 1, 2]
    assert len(tokenizer.encode("the assistant").ids) < len("the assistant")  # it has merges


@functools.cache
def _raw_tokenizer() -> Tokenizer:
    # Hypothesis does not take function-scoped fixtures: build one by hand, once.
    with tempfile.TemporaryDirectory() as directory:
        return Tokenizer.from_file(str(build_tiny_model(Path(directory)) / "tokenizer.json"))


@given(st.text(max_size=60))
def test_any_text_round_trips_through_the_tokenizer(text: str) -> None:
    tokenizer = _raw_tokenizer()
    assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text


# --- transformers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf(model_dir: Path) -> Iterator[tuple[Any, Any]]:
    """(tokenizer, model), loaded by transformers with the hub switched off."""
    pytest.importorskip("torch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        yield tokenizer, model


def _greedy(model: Any, inputs: Any, max_new_tokens: int = 40) -> list[list[int]]:
    """The generated ids of each row, after the prompt (and without trailing padding)."""
    import torch

    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    rows = output[:, inputs["input_ids"].shape[1]:].tolist()
    stripped = []
    for row in rows:
        end = row.index(EOS_TOKEN_ID) + 1 if EOS_TOKEN_ID in row else len(row)
        assert set(row[end:]) <= {PAD_TOKEN_ID}  # after eos, a finished row of a batch is padded
        stripped.append(row[:end])
    return stripped


def test_transformers_loads_it_offline(hf: tuple[Any, Any]) -> None:
    tokenizer, model = hf
    assert type(model).__name__ == "LlamaForCausalLM"
    assert str(model.dtype) == "torch.float32"
    assert model.config.head_dim == 32
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # GQA
    assert model.config.rope_parameters["rope_theta"] == CONFIG["rope_theta"]
    assert len(tokenizer) == model.config.vocab_size == VOCAB_SIZE
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        BOS_TOKEN_ID, EOS_TOKEN_ID, PAD_TOKEN_ID)
    assert tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == 512
    assert tokenizer("Hello")["input_ids"][0] != BOS_TOKEN_ID  # no bos is added (as in ChatML)
    generation = model.generation_config
    assert (generation.eos_token_id, generation.pad_token_id, generation.do_sample) == (
        EOS_TOKEN_ID, PAD_TOKEN_ID, False)


def test_transformers_tokenizer_round_trips_and_formats_chatml(hf: tuple[Any, Any]) -> None:
    tokenizer, _ = hf
    for text in ROUND_TRIP:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True,
                                         tokenize=False) == CHATML
    assert tokenizer.apply_chat_template(MESSAGES, tokenize=False) == CHATML.removesuffix(
        "<|im_start|>assistant\n")
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"},
                                          {"type": "text", "text": "b"}]}]
    assert tokenizer.apply_chat_template(parts, tokenize=False) == (
        "<|im_start|>user\nab<|im_end|>\n")
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids(IM_START)) == 3
    assert ids.count(EOS_TOKEN_ID) == 2


def test_batched_greedy_equals_one_by_one(hf: tuple[Any, Any]) -> None:
    tokenizer, model = hf
    for prompts in (PROMPTS, [tokenizer.apply_chat_template([{"role": "user", "content": p}],
                                                            add_generation_prompt=True,
                                                            tokenize=False) for p in PROMPTS]):
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        assert len(set(lengths)) == 3 and batch["attention_mask"][:, -1].all()  # left-padded
        batched = _greedy(model, batch)
        one_by_one = [_greedy(model, tokenizer(p, return_tensors="pt"))[0] for p in prompts]
        assert batched == one_by_one
        assert all(len(ids) > 1 for ids in batched)


def test_eos_stops_generation(hf: tuple[Any, Any]) -> None:
    tokenizer, model = hf
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}],
                                           add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt, return_tensors="pt")
    # The model ends its reply: "." then <|im_end|>, the eos of generation_config.json.
    [ids] = _greedy(model, inputs, max_new_tokens=64)
    assert 3 <= len(ids) < 64
    assert ids[-2:] == [tokenizer.convert_tokens_to_ids(STOP_TOKEN), EOS_TOKEN_ID]
    assert EOS_TOKEN_ID not in ids[:-1]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert text.endswith(".") and all(c == "\n" or " " <= c <= "~" for c in text)
    # Without that eos, generation goes on through <|im_end|> to max_new_tokens.
    import torch

    with torch.no_grad():
        longer = model.generate(**inputs, max_new_tokens=len(ids) + 3, do_sample=False,
                                eos_token_id=tokenizer.convert_tokens_to_ids(IM_START))
    assert longer[0, inputs["input_ids"].shape[1]:].tolist()[:len(ids)] == ids
    assert longer.shape[1] == inputs["input_ids"].shape[1] + len(ids) + 3
    # A prompt that ends with "." gets <|im_end|> at once: an empty reply.
    assert _greedy(model, tokenizer("The end.", return_tensors="pt")) == [[EOS_TOKEN_ID]]


# --- mlx-lm -----------------------------------------------------------------------------------


def test_mlx_lm_loads_it_and_agrees_with_transformers(model_dir: Path,
                                                      hf: tuple[Any, Any]) -> None:
    mlx_lm = pytest.importorskip("mlx_lm")
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    tokenizer, model = hf
    mlx_model, mlx_tokenizer = mlx_lm.load(str(model_dir))
    assert mlx_tokenizer.eos_token_ids == {EOS_TOKEN_ID}
    greedy = make_sampler(temp=0.0)
    chat = mlx_tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert chat == CHATML
    for prompt in [*PROMPTS, CHATML]:
        expected = _greedy(model, tokenizer(prompt, return_tensors="pt"), max_new_tokens=8)[0]
        steps = list(stream_generate(mlx_model, mlx_tokenizer, prompt, max_tokens=8,
                                     sampler=greedy))
        assert [s.token for s in steps] == expected
        finish = "stop" if expected[-1] == EOS_TOKEN_ID else "length"
        assert steps[-1].finish_reason == finish
        text = mlx_lm.generate(mlx_model, mlx_tokenizer, prompt, max_tokens=8, sampler=greedy)
        assert text == tokenizer.decode(expected, skip_special_tokens=True)
