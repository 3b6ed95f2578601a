"""A tiny random Llama model, built offline in milliseconds, for testing the local runtimes.

``build_tiny_model(directory)`` writes a complete Hugging Face model directory (about 0.5 MB) in
the most standard Llama layout, so that the same directory loads in transformers
(``AutoModelForCausalLM`` / ``AutoTokenizer`` with ``local_files_only=True``), mlx-lm
(``mlx_lm.load``) and vLLM:

- ``config.json``: ``LlamaForCausalLM``, 2 layers, hidden size 64, 2 attention heads of
  ``head_dim`` 32 sharing 1 key/value head (grouped-query attention), SwiGLU MLP of 128, float32,
  512 positions, untied ``lm_head``;
- ``model.safetensors``: seeded random float32 weights under the names transformers saves, with
  metadata ``{"format": "pt"}``;
- ``tokenizer.json``: a byte-level BPE (GPT-2 style: ByteLevel pre-tokenizer and decoder, the
  256-byte alphabet, so every string round-trips) trained here on a small English corpus, plus the
  special tokens ``<|endoftext|>`` (bos and pad), ``<|im_start|>`` and ``<|im_end|>`` (eos);
- ``tokenizer_config.json`` (``PreTrainedTokenizerFast`` with a ChatML chat template),
  ``special_tokens_map.json`` and ``generation_config.json`` (greedy by default).

Only ``json``, ``numpy``, ``safetensors.numpy`` and ``tokenizers`` are used: no torch, and no
network. The bytes written depend only on ``seed`` (and the library versions).

The weights are random, so the text it generates is gibberish, but it is shaped (see
``_shape_output``) to be convenient in tests:
- it only ever generates printable ASCII (and newlines): never special tokens other than
  ``<|im_end|>``, nor bytes that would leave a UTF-8 sequence half done, so that every runtime's
  (streaming) detokenizer gives the same text;
- it ends its turn by itself: now and then it writes ".", and right after "." always
  ``<|im_end|>``, the eos. With seed 0, greedy replies to short chat prompts stop within about 10
  to 30 tokens (some greedy loops never stop: use max_tokens), and a prompt that ends with "."
  gets an empty reply;
- greedy token ids are reproducible: batched (left-padded) equals one by one in transformers,
  and mlx-lm (float32) gives the same ids. The margin between the two best logits is sometimes
  as small as about 0.005, so half precision (bf16/fp16, e.g. vLLM on GPU) may pick other
  tokens after a while: compare runtimes in float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save as save_safetensors
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

__all__ = [
    "BOS_TOKEN_ID",
    "CHAT_TEMPLATE",
    "CONFIG",
    "ENDOFTEXT",
    "EOS_TOKEN_ID",
    "FILES",
    "IM_END",
    "IM_START",
    "PAD_TOKEN_ID",
    "SPECIAL_TOKENS",
    "STOP_TOKEN",
    "VOCAB_SIZE",
    "build_tiny_model",
    "tiny_model_dir",
]

ENDOFTEXT = "<|endoftext|>"  # bos and pad
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # eos: ends an assistant turn
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)  # the trainer gives them ids 0, 1, 2
BOS_TOKEN_ID = PAD_TOKEN_ID = 0
EOS_TOKEN_ID = 2
VOCAB_SIZE = 384  # 3 special tokens + 256 bytes + 125 merges
STOP_TOKEN = "."  # the model says <|im_end|> right after this token (see _shape_output)
_STOP_ID = 16  # its id: the 14th byte of the ByteLevel alphabet (checked in _train_tokenizer)
_STOP_BIAS = 7.0  # how much lm_head favours ".": most replies stop within about 30 tokens
_FLAG = 20.0  # the flag's size in the embedding of ".", and the logit scale of the output shaping

FILES = ("config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json")

# ChatML, as Qwen and others write it: one "<|im_start|>role\ncontent<|im_end|>\n" per message,
# then "<|im_start|>assistant\n" when a reply is wanted. Content may also be a list of text parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 512,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    # Written the transformers 4.x way (top-level rope_theta, rope_scaling null): mlx-lm and vLLM
    # read it, and transformers 5 turns it into rope_parameters on load.
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "tie_word_embeddings": False,
    "use_cache": True,
    "bos_token_id": BOS_TOKEN_ID,
    "eos_token_id": EOS_TOKEN_ID,
    "pad_token_id": PAD_TOKEN_ID,
    "torch_dtype": "float32",
    "dtype": "float32",
}

_CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model is a useful thing to have in a test.
It loads in a moment, it needs no network, and it always says the same thing for the same prompt.
The user asks a question and the assistant gives an answer. The system message tells the
assistant how to behave: be helpful, be brief, and be honest about what you do not know.
Hello! How are you today? I am fine, thank you. What is the weather like where you are?
It is sunny and warm here, with a light wind from the west and a few clouds over the hills.
Once upon a time there was a little robot who wanted to learn how to write stories. Every
morning it read a book, and every evening it wrote a page of its own. The pages were not very
good at first, but the robot kept going, and in the end it wrote a story that made people smile.
Numbers are words too: one, two, three, four, five, six, seven, eight, nine, ten, 2024, 3.14.
Please write a short poem about the sea. The sea is wide and the sea is deep; it sings the
sailors off to sleep. Translate this sentence into French. Summarize the following text in one
line. Explain why the sky is blue. Because sunlight is scattered by the air, and blue light is
scattered more than red light, the sky looks blue during the day and red at sunset.
def add(a, b):
    return a + b
{"name": "tiny", "type": "object", "properties": {"answer": {"type": "string"}}}
"""


def _train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        special_tokens=[AddedToken(token, special=True, normalized=False)
                        for token in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:  # the corpus gives more merges than it needs
        raise RuntimeError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, not {VOCAB_SIZE}")
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == token_id
    assert tokenizer.token_to_id(STOP_TOKEN) == _STOP_ID
    return tokenizer


def _printable(tokenizer: Tokenizer) -> np.ndarray:
    """Which tokens decode to printable ASCII (or newlines): the merges, learned from an ASCII
    corpus, and 96 of the 256 bytes; not the special tokens, nor the bytes that are control
    characters or pieces of UTF-8 sequences."""
    mask = np.zeros(VOCAB_SIZE, dtype=bool)
    for token_id in range(len(SPECIAL_TOKENS), VOCAB_SIZE):
        text = tokenizer.decode([token_id])
        mask[token_id] = all(char == "\n" or " " <= char <= "~" for char in text)
    return mask


def _weights(seed: int, printable: np.ndarray) -> dict[str, np.ndarray]:
    """Random weights, scaled so that every part of the model matters to the logits: embeddings
    of unit variance and projections that keep it (1/sqrt(fan_in)), norms near 1 (not exactly, so
    that a runtime which drops them gives other tokens). Then _shape_output."""
    rng = np.random.default_rng(seed)
    hidden, inter = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    head_dim = CONFIG["head_dim"]
    q_dim = CONFIG["num_attention_heads"] * head_dim
    kv_dim = CONFIG["num_key_value_heads"] * head_dim

    def matrix(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(scale / cols**0.5)

    def norm() -> np.ndarray:
        return 1 + np.float32(0.1) * rng.standard_normal(hidden, dtype=np.float32)

    weights = {"model.embed_tokens.weight": rng.standard_normal((VOCAB_SIZE, hidden),
                                                                dtype=np.float32)}
    for layer in range(CONFIG["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        weights |= {
            prefix + "input_layernorm.weight": norm(),
            prefix + "self_attn.q_proj.weight": matrix(q_dim, hidden),
            prefix + "self_attn.k_proj.weight": matrix(kv_dim, hidden),
            prefix + "self_attn.v_proj.weight": matrix(kv_dim, hidden),
            prefix + "self_attn.o_proj.weight": matrix(hidden, q_dim),
            prefix + "post_attention_layernorm.weight": norm(),
            prefix + "mlp.gate_proj.weight": matrix(inter, hidden),
            prefix + "mlp.up_proj.weight": matrix(inter, hidden),
            prefix + "mlp.down_proj.weight": matrix(hidden, inter),
        }
    weights["model.norm.weight"] = norm()
    weights["lm_head.weight"] = matrix(VOCAB_SIZE, hidden, scale=4.0)
    _shape_output(weights, printable)
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in weights.items()}


def _shape_output(weights: dict[str, np.ndarray], printable: np.ndarray) -> None:
    """Make the model write printable ASCII only, and end its turn: now and then it writes the
    stop token ".", and always <|im_end|> right after it (never otherwise).

    Two channels of the residual stream are kept out of reach of the layers (zero rows in o_proj
    and down_proj), so that they reach the final norm as the embedding left them:
    - a bias channel, 1 in every token's embedding, through which lm_head adds a bias to the
      logits: far below zero for the tokens that are not printable, a little above it for ".";
    - a flag channel, nonzero only in the embedding of ".", through which lm_head gives
      <|im_end|> a logit far above any other after "."; elsewhere <|im_end|> scores exactly 0,
      below the best of the other (random) logits."""
    bias, flag = CONFIG["hidden_size"] - 2, CONFIG["hidden_size"] - 1
    embed, head = weights["model.embed_tokens.weight"], weights["lm_head.weight"]
    embed[:, bias], embed[:, flag] = 1, 0
    embed[_STOP_ID, flag] = _FLAG
    for layer in range(CONFIG["num_hidden_layers"]):
        for name in ("self_attn.o_proj", "mlp.down_proj"):
            weights[f"model.layers.{layer}.{name}.weight"][[bias, flag], :] = 0
    head[:, [bias, flag]] = 0
    head[~printable, bias] = -_FLAG * 5
    head[_STOP_ID, bias] = _STOP_BIAS
    head[EOS_TOKEN_ID, :] = 0
    head[EOS_TOKEN_ID, flag] = _FLAG


def _added_token(content: str) -> dict[str, Any]:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}


def _tokenizer_config() -> dict[str, Any]:
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): _added_token(token)
                                 for i, token in enumerate(SPECIAL_TOKENS)},
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": ENDOFTEXT,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": CONFIG["max_position_embeddings"],
        "pad_token": ENDOFTEXT,
        "padding_side": "left",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


def _special_tokens_map() -> dict[str, Any]:
    def entry(content: str) -> dict[str, Any]:
        return {key: value for key, value in _added_token(content).items() if key != "special"}

    return {"additional_special_tokens": [entry(IM_START), entry(IM_END)],
            "bos_token": entry(ENDOFTEXT), "eos_token": entry(IM_END),
            "pad_token": entry(ENDOFTEXT)}


def _generation_config() -> dict[str, Any]:
    return {"bos_token_id": BOS_TOKEN_ID, "do_sample": False, "eos_token_id": EOS_TOKEN_ID,
            "pad_token_id": PAD_TOKEN_ID}


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build_tiny_model(directory: Path, *, seed: int = 0) -> Path:
    """Write the tiny Llama model into ``directory`` (created if need be) and return it.

    The same ``seed`` always gives the same bytes; another seed gives other weights (the
    tokenizer does not depend on the seed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    weights = _weights(seed, _printable(tokenizer))
    files = {
        "config.json": _json(CONFIG),
        "generation_config.json": _json(_generation_config()),
        "model.safetensors": save_safetensors(weights, metadata={"format": "pt"}),
        "special_tokens_map.json": _json(_special_tokens_map()),
        "tokenizer.json": (tokenizer.to_str(pretty=True) + "\n").encode(),
        "tokenizer_config.json": _json(_tokenizer_config()),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


def tiny_model_dir(tmp_path_factory: Any, *, seed: int = 0) -> Path:
    """Build the model in a fresh directory of pytest's ``tmp_path_factory``: the body of a
    session-scoped fixture, e.g.

        @pytest.fixture(scope="session")
        def tiny_model(tmp_path_factory):
            return tiny_model_dir(tmp_path_factory)
    """
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), seed=seed)
