"""Effectful: the in-process local runtimes (transformers, vLLM, MLX). Loads a model once per
engine, renders chat input, runs a whole batch in one call, and turns the runtime's output into
``Generation`` values. ``Engine.stream`` runs one prompt and yields its answer text as the runtime
makes tokens (transformers and MLX token by token; vLLM's in-process ``LLM`` in one delta at the
end), then the same ``Result`` the whole call gives.

Strategy: the runtimes are imported on first use, never at ``import llmbackend``; a missing one is
a ``MissingDependencyError`` naming the pip extra. Everything that can be decided without the
runtime (chat input, config mapping) is decided by the pure ``llmbackend.providers.local``.
Generation holds a lock: the runtimes' random state and model are not safe to share between
threads.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from returns.result import Result, Success

from llmbackend.errors import (
    ConfigurationError,
    LLMError,
    MissingDependencyError,
    UnsupportedError,
)
from llmbackend.messages import Conversation
from llmbackend.providers import local
from llmbackend.types import FinishReason, Generation, GenerationConfig, StructuredOutput, Usage

__all__ = [
    "ENGINES",
    "Engine",
    "MLXEngine",
    "TransformersEngine",
    "VLLMEngine",
    "open_engine",
    "require",
]


def require(provider: local.LocalProvider) -> None:
    """Raise ``MissingDependencyError`` unless ``provider``'s runtime is installed (cheap: looks
    the modules up without importing them)."""
    missing = [name for name in provider.modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            message=f"the {provider.label} provider needs {', '.join(missing)}: "
            f"pip install 'llmbackend[{provider.extra}]'", provider=provider.name,
            extra=provider.extra)


class Engine:
    """One loaded model of one local runtime."""

    provider: local.LocalProvider

    def __init__(self, model: str, options: Mapping[str, Any]) -> None:
        self.model = model
        self.options = dict(options)
        self._lock = threading.Lock()
        self._loaded = False
        self._streaming_in: int | None = None  # the thread reading an open stream

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def generate(self, prompts: Sequence[str | Conversation], config: GenerationConfig,
                 schema: StructuredOutput[Any] | None) -> list[Result[Generation[str], LLMError]]:
        """Every prompt's answer (a prompt: a string, or a conversation, a tuple of messages), in
        order, from one batched run of the runtime."""
        inputs = local.prompt_inputs(
            prompts, config, apply_chat_template=bool(self.options.get("apply_chat_template")),
            provider=self.provider.name)
        self._check_not_streaming_here()
        with self._lock:
            self._ensure_loaded()
            return self._generate(inputs, config, schema)

    def stream(self, prompt: str | Conversation, config: GenerationConfig,
               schema: StructuredOutput[Any] | None
               ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        """One prompt's answer as it is made: non-empty text deltas, in order, then exactly one
        final ``Result``, the one ``generate([prompt], config, schema)[0]`` gives (the deltas
        joined are its text). A bad input raises here; the errors the runtime raises in a whole
        call are raised by the first ``next()``.
        Closing the generator early stops the runtime's generation and frees the engine.

        Strategy: the engine lock is held from the first ``next()`` until the generator ends or
        is closed, as for ``generate``: the model runs one generation at a time. Another thread
        waits for the stream to end; the thread reading the stream would wait for itself, so a
        call it makes to the same engine before closing the stream is a ``ConfigurationError``
        instead of a deadlock."""
        (item,) = local.prompt_inputs(  # a bad input raises here, before the stream starts
            [prompt], config, apply_chat_template=bool(self.options.get("apply_chat_template")),
            provider=self.provider.name)
        return self._locked_stream(item, config, schema)

    def _locked_stream(self, item: local.PromptInput, config: GenerationConfig,
                       schema: StructuredOutput[Any] | None
                       ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        self._check_not_streaming_here()
        with self._lock:
            self._streaming_in = threading.get_ident()
            try:
                self._ensure_loaded()
                yield from self._stream(item, config, schema)
            finally:
                self._streaming_in = None

    def _check_not_streaming_here(self) -> None:
        if self._streaming_in == threading.get_ident():
            raise ConfigurationError(
                message=f"a stream of this {self.provider.label} model is still open in this "
                "thread: read it to its end or close it before the next call (the model runs "
                "one generation at a time)", key="model")

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        try:
            self._load()
        except (OSError, ValueError, RuntimeError) as exc:  # missing or broken model
            raise ConfigurationError(
                message=f"{self.provider.label} could not load the model "
                f"{self.model!r}: {type(exc).__name__}: {exc}", key="model") from exc
        self._loaded = True

    def close(self) -> None:
        """Let go of the model (the runtime frees it when nothing else holds it)."""
        with self._lock:
            self._unload()
            self._loaded = False

    def _load(self) -> None:
        raise NotImplementedError

    def _unload(self) -> None:
        raise NotImplementedError

    def _generate(self, inputs: Sequence[local.PromptInput], config: GenerationConfig,
                  schema: StructuredOutput[Any] | None
                  ) -> list[Result[Generation[str], LLMError]]:
        raise NotImplementedError

    def _stream(self, item: local.PromptInput, config: GenerationConfig,
                schema: StructuredOutput[Any] | None
                ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        """The runtime's stream of one input (the lock held, the model loaded). This default,
        for a runtime that cannot stream: the whole call, its text as one delta at the end."""
        (result,) = self._generate([item], config, schema)
        yield from _Deltas(None).finish(result)

    def _render(self, inputs: Sequence[local.PromptInput]) -> list[str]:
        """Each input as the text the model reads: raw, or rendered with the chat template (a
        prefill: the last, assistant, message continued, no generation prompt)."""
        tokenizer: Any = self.__dict__["_tokenizer"]
        add_generation_prompt = self.options.get("add_generation_prompt", True)
        texts = []
        for item in inputs:
            if item.text is not None:
                texts.append(item.text)
                continue
            turns = {"continue_final_message": True} if item.prefill else {
                "add_generation_prompt": add_generation_prompt}
            try:
                texts.append(tokenizer.apply_chat_template(
                    list(item.messages or ()), tokenize=False, **turns))
            except Exception as exc:
                if not _template_error(exc):
                    raise
                raise ConfigurationError(
                    message=f"{self.provider.label} could not render a conversation with the "
                    f"chat template of {self.model!r}: {type(exc).__name__}: {exc} (a list of "
                    "messages, like config.extra['conversation'], needs the tokenizer's chat "
                    "template, and one that takes these roles in this order)",
                    key="input") from exc
        return texts

    def _json_grammar(self, xgrammar: Any, schema: StructuredOutput[Any],
                      hf_tokenizer: Any, vocab_size: int) -> Any:
        """``schema`` compiled by xgrammar for this model's tokenizer (the compiler is made
        once per engine). Compact JSON, no free whitespace: a weak model could otherwise loop
        on spaces (and this is the JSON vLLM writes with ``disable_any_whitespace``)."""
        compiler = self.__dict__.get("_compiler")
        if compiler is None:
            info = xgrammar.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=vocab_size)
            compiler = self._compiler = xgrammar.GrammarCompiler(info)
        return compiler.compile_json_schema(json.dumps(dict(schema.schema)),
                                            any_whitespace=False, separators=(",", ":"))

    def _result(self, text: str, finish: FinishReason, prompt_tokens: int,
                completion_tokens: int, raw: Mapping[str, Any]
                ) -> Result[Generation[str], LLMError]:
        return Success(Generation(
            text=text, parsed=text, finish_reason=finish, provider=self.provider.name,
            model=self.model, usage=Usage(input_tokens=prompt_tokens,
                                          output_tokens=completion_tokens),
            raw=raw))


def _template_error(exc: Exception) -> bool:
    """Whether ``exc`` is the chat template refusing (no template, or a template that raises,
    e.g. roles that must alternate): a ``ValueError`` or a jinja2 ``TemplateError``."""
    if isinstance(exc, ValueError):
        return True
    try:
        from jinja2 import TemplateError
    except ImportError:  # pragma: no cover - the runtimes render templates with jinja2
        return False
    return isinstance(exc, TemplateError)


def _cut_at_stop(text: str, stops: Sequence[str] | None) -> tuple[str, bool]:
    """``text`` up to the earliest stop string (excluded), and whether one was found."""
    if not stops:
        return text, False
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return (text[:min(found)], True) if found else (text, False)


#: What a tokenizer's clean-up (``clean_up_tokenization_spaces``) joins to the word before it,
#: dropping the space: ``" ."`` and the like are covered by holding back trailing whitespace,
#: these by holding back a space followed by one of their proper prefixes (``" n"``, ``" '"``).
_CLEANED_UP = ("n't", "'m", "'s", "'ve", "'re")


def _settled(text: str, stops: Sequence[str] | None) -> str:
    """Pure: the start of ``text`` (the kept tokens decoded so far) that more tokens cannot
    change: cut at a stop string (as the final text is), less any end that could still be
    the start of a stop string, less trailing whitespace (the clean-up may drop a space before
    punctuation) and trailing U+FFFD (an incomplete UTF-8 sequence)."""
    end = len(text)
    for stop in stops or ():
        found = text.find(stop)
        if found >= 0:
            end = min(end, found)
        # Strategy: an occurrence that would start before ``end`` and finish in tokens not
        # made yet; the longest such prefix of the stop at the end of the text starts first.
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                end = min(end, len(text) - size)
                break
    settled = text[:end]
    while True:
        trimmed = settled.rstrip().rstrip("\ufffd")
        space = trimmed.rfind(" ")
        if space >= 0 and any(
                word.startswith(trimmed[space + 1:]) and len(trimmed) - space - 1 < len(word)
                for word in _CLEANED_UP):
            trimmed = trimmed[:space]
        if trimmed == settled:
            return settled
        settled = trimmed


class _Deltas:
    """The text of one stream handed out so far (``emitted``), and the next delta of each
    decoded text (``step``) and of the final result (``finish``)."""

    def __init__(self, stops: Sequence[str] | None) -> None:
        self.emitted = ""
        self._stops = stops
        self._broken = False

    def step(self, text: str) -> str:
        """What is new in the settled part of ``text`` (the kept tokens decoded so far)."""
        return self._take(_settled(text, self._stops))

    def finish(self, result: Result[Generation[str], LLMError]
               ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        """The rest of the final text (when there is one), then ``result``."""
        final = result.map(lambda generation: generation.text).value_or(None)
        rest = self._take(final) if final is not None else ""
        if rest:
            yield rest
        yield result

    def _take(self, settled: str) -> str:
        if self._broken or self.emitted.startswith(settled):
            return ""
        if not settled.startswith(self.emitted):
            # Should not happen: the decoded text changed what was already handed out (a
            # tokenizer clean-up ``_settled`` does not know). Nothing more is emitted, and the
            # deltas then fall short of the final text.
            self._broken = True
            return ""
        delta = settled[len(self.emitted):]
        self.emitted = settled
        return delta


# --- transformers ---------------------------------------------------------------------------------


class TransformersEngine(Engine):
    """transformers: the model and tokenizer from ``transformers.pipeline("text-generation",
    ...)`` (``pipeline_kwargs``, ``model_kwargs`` and ``tokenizer`` go there), and each batch in
    one ``model.generate`` call with left padding."""

    provider = local.LOCAL_PROVIDERS["transformers"]

    def _load(self) -> None:
        import transformers

        pipeline_kwargs = dict(self.options.get("pipeline_kwargs") or {})
        self._batch_size = pipeline_kwargs.get("batch_size")
        pipe: Any = transformers.pipeline(
            "text-generation", model=self.model, tokenizer=self.options.get("tokenizer"),
            model_kwargs=dict(self.options.get("model_kwargs") or {}), **pipeline_kwargs)
        # Typed loosely: transformers' own annotations do not describe these objects well.
        self._model: Any = pipe.model
        self._tokenizer: Any = pipe.tokenizer
        tokenizer = self._tokenizer
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _unload(self) -> None:
        self.__dict__.pop("_model", None)
        self.__dict__.pop("_tokenizer", None)

    def _generate(self, inputs: Sequence[local.PromptInput], config: GenerationConfig,
                  schema: StructuredOutput[Any] | None
                  ) -> list[Result[Generation[str], LLMError]]:
        kwargs = self._generate_kwargs(config)
        texts = self._render(inputs)
        templated = [item.messages is not None for item in inputs]
        size = self._batch_size or len(texts)
        results: list[Result[Generation[str], LLMError]] = []
        for start in range(0, len(texts), size):
            results.extend(self._run(texts[start:start + size],
                                     any(templated[start:start + size]), config, schema, kwargs))
        return results

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, Any]:
        kwargs = local.transformers_generate_kwargs(config)
        if kwargs.get("stop_strings"):
            kwargs["tokenizer"] = self._tokenizer
        return kwargs

    def _run(self, chunk: list[str], templated: bool, config: GenerationConfig,
             schema: StructuredOutput[Any] | None, kwargs: Mapping[str, Any]
             ) -> list[Result[Generation[str], LLMError]]:
        """One ``model.generate`` call for ``chunk`` (``kwargs`` may hold a ``streamer`` and
        ``stopping_criteria`` too), each row's answer decoded."""
        import torch
        import transformers

        # A chat template writes its own special tokens; raw text gets the tokenizer's.
        encoded = self._tokenizer(chunk, return_tensors="pt", padding=True,
                                  add_special_tokens=not templated)
        if config.seed is not None:
            transformers.set_seed(config.seed)
        call = dict(kwargs)
        if schema is not None:
            # A fresh processor per run: it keeps one grammar matcher per sequence.
            call["logits_processor"] = [self._json_processor(schema)]
        with torch.no_grad():  # thread-local: entered in the thread that generates
            output = self._model.generate(**encoded, **call,
                                          pad_token_id=self._tokenizer.pad_token_id)
        width = encoded["input_ids"].shape[1]
        prompt_counts = encoded["attention_mask"].sum(dim=1).tolist()
        return [self._decode(prompt, row[width:].tolist(), int(prompt_tokens),
                             kwargs.get("stop_strings"), kwargs["max_new_tokens"])
                for prompt, row, prompt_tokens in zip(chunk, output, prompt_counts, strict=True)]

    def _stream(self, item: local.PromptInput, config: GenerationConfig,
                schema: StructuredOutput[Any] | None
                ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        """``_run`` on the one input in a worker thread, with a streamer that hands each new
        token to this generator through a queue, and a stopping criterion that ends the
        generation once this generator is closed.

        Strategy: ``model.generate`` only streams through a callback, so it runs in a thread
        and this generator waits on the queue; the worker's outcome (its results, or the
        exception it raised, re-raised here) comes through the same queue after every token.
        The thread is always joined before this generator ends, so the model is not in use
        once the engine lock is released."""
        from transformers.generation.stopping_criteria import StoppingCriteriaList

        kwargs = self._generate_kwargs(config)
        (text,) = self._render([item])
        tokens: queue.Queue[_Streamed] = queue.Queue()
        cancel = threading.Event()
        kwargs["streamer"] = _queue_streamer(tokens)
        kwargs["stopping_criteria"] = StoppingCriteriaList(
            [*(kwargs.get("stopping_criteria") or ()), _cancel_criterion(cancel)])

        def work() -> None:
            outcome: _Streamed
            try:
                outcome = tuple(self._run([text], item.messages is not None, config, schema,
                                          kwargs))
            except BaseException as exc:  # handed to the reading thread, re-raised there
                outcome = exc
            tokens.put(outcome)

        worker = threading.Thread(target=work, name="llmbackend-transformers-stream",
                                  daemon=True)
        deltas = _Deltas(kwargs.get("stop_strings"))
        new_ids: list[int] = []
        try:
            worker.start()
            while isinstance(streamed := tokens.get(), list):
                new_ids.extend(streamed)
                delta = deltas.step(self._tokenizer.decode(
                    _split_eos(new_ids, self._eos())[1], skip_special_tokens=True))
                if delta:
                    yield delta
        finally:
            cancel.set()
            worker.join()
        if isinstance(streamed, BaseException):
            raise streamed
        yield from deltas.finish(streamed[0])

    def _json_processor(self, schema: StructuredOutput[Any]) -> Any:
        """An xgrammar logits processor that lets the model write only JSON valid for
        ``schema`` (constrained decoding; the answer is still validated afterwards)."""
        try:
            import xgrammar
            from xgrammar.contrib.hf import LogitsProcessor
        except ImportError as exc:
            raise MissingDependencyError(
                message="structured outputs on the transformers provider need xgrammar: "
                "pip install 'llmbackend[transformers]'", provider="transformers",
                extra="transformers") from exc
        return LogitsProcessor(self._json_grammar(
            xgrammar, schema, self._tokenizer, self._model.config.vocab_size))

    def _eos(self) -> set[int]:
        return (_ids(self._model.generation_config.eos_token_id)
                | _ids(self._tokenizer.eos_token_id))

    def _decode(self, prompt: str, new_ids: list[int], prompt_tokens: int,
                stops: Sequence[str] | None, budget: int) -> Result[Generation[str], LLMError]:
        generated, kept, ended = _split_eos(new_ids, self._eos())
        text, stopped = _cut_at_stop(self._tokenizer.decode(kept, skip_special_tokens=True),
                                     stops)
        finish: FinishReason = ("stop" if ended or stopped
                                else "length" if len(generated) >= budget else "stop")
        return self._result(text, finish, prompt_tokens, len(generated),
                            {"prompt": prompt, "token_ids": kept})


def _split_eos(new_ids: list[int], eos: set[int]) -> tuple[list[int], list[int], bool]:
    """The tokens generated up to the first eos (included), those kept (the eos left out), and
    whether an eos was found (the tokens after it are padding)."""
    cut = next((i for i, token in enumerate(new_ids) if token in eos), None)
    if cut is None:
        return new_ids, new_ids, False
    return new_ids[:cut + 1], new_ids[:cut], True


#: What the transformers worker thread hands the stream: a step's new token ids (a list), then
#: its results (a tuple) or the exception it raised.
_Streamed = list[int] | tuple[Result[Generation[str], LLMError], ...] | BaseException


def _queue_streamer(tokens: queue.Queue[_Streamed]) -> Any:
    """A transformers streamer putting each step's new token ids on ``tokens`` (the first
    ``put`` is the prompt: skipped)."""
    from transformers.generation.streamers import BaseStreamer

    class QueueStreamer(BaseStreamer):  # type: ignore[misc]
        def __init__(self) -> None:
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            tokens.put([int(token) for token in value.reshape(-1).tolist()])

        def end(self) -> None:
            pass  # the worker puts its outcome once ``generate`` returns

    return QueueStreamer()


def _cancel_criterion(cancel: threading.Event) -> Any:
    """A transformers stopping criterion that ends every sequence once ``cancel`` is set."""
    import torch
    from transformers.generation.stopping_criteria import StoppingCriteria

    class Cancelled(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool,
                              device=input_ids.device)

    return Cancelled()


def _ids(value: object) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list | tuple):
        return {v for v in value if isinstance(v, int)}
    return set()


# --- MLX ------------------------------------------------------------------------------------------


class MLXEngine(Engine):
    """MLX: the model from ``mlx_lm.load`` (``load_kwargs`` go there), and each batch in one
    ``mlx_lm.batch_generate`` call. ``config.extra`` entries go to ``make_sampler`` (``top_k``,
    ``min_p``...), ``make_logits_processors`` (``repetition_penalty``, ``logit_bias``...) or the
    batch generator (``completion_batch_size``...), whichever takes them."""

    provider = local.LOCAL_PROVIDERS["mlx"]

    def _load(self) -> None:
        import mlx_lm

        loaded: Any = mlx_lm.load(self.model, **dict(self.options.get("load_kwargs") or {}))
        self._model: Any = loaded[0]
        self._tokenizer: Any = loaded[1]

    def _unload(self) -> None:
        self.__dict__.pop("_model", None)
        self.__dict__.pop("_tokenizer", None)

    def _generate(self, inputs: Sequence[local.PromptInput], config: GenerationConfig,
                  schema: StructuredOutput[Any] | None
                  ) -> list[Result[Generation[str], LLMError]]:
        steps = self._run(inputs, config, schema)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _stream(self, item: local.PromptInput, config: GenerationConfig,
                schema: StructuredOutput[Any] | None
                ) -> Generator[str | Result[Generation[str], LLMError], None, None]:
        """``_run`` on the one input, a delta after each step that settles more text."""
        deltas = _Deltas(local.stop_strings(config, "mlx"))
        steps = self._run([item], config, schema)
        new_ids: list[int] = []
        try:
            while True:
                try:
                    _, token = next(steps)
                except StopIteration as done:
                    (result,) = done.value
                    break
                new_ids.append(token)
                delta = deltas.step(self._tokenizer.decode(new_ids))
                if delta:
                    yield delta
        finally:
            steps.close()  # a stream closed early: the batch generator is closed
        yield from deltas.finish(result)

    def _run(self, inputs: Sequence[local.PromptInput], config: GenerationConfig,
             schema: StructuredOutput[Any] | None
             ) -> Generator[tuple[int, int], None, list[Result[Generation[str], LLMError]]]:
        """The batch generator's run of ``inputs``: yields each kept token (the index of its
        input, the token) as it is made, one step at a time, and returns every answer.

        Strategy: a generator, so that ``_generate`` runs it through and ``_stream`` hands out
        text between steps, with the same mapping either way."""
        import inspect

        import mlx.core as mx
        from mlx_lm import sample_utils
        from mlx_lm.generate import BatchGenerator

        sampler_kwargs = local.mlx_sampler_kwargs(config)
        processor_kwargs: dict[str, Any] = {}
        generator_kwargs: dict[str, Any] = {}
        takes = {name: set(inspect.signature(function).parameters) for name, function in (
            ("sampler", sample_utils.make_sampler),
            ("processors", sample_utils.make_logits_processors),
            ("generator", BatchGenerator.__init__))}
        for key, value in local.passthrough(config).items():
            if key in takes["sampler"]:
                sampler_kwargs[key] = value
            elif key in takes["processors"]:
                processor_kwargs[key] = value
            elif key in takes["generator"] and key not in ("self", "model"):
                generator_kwargs[key] = value
            else:
                raise UnsupportedError(
                    message=f"config.extra[{key!r}] is not an MLX sampling or generation option "
                    "(make_sampler, make_logits_processors or BatchGenerator)",
                    provider="mlx", parameter=key)
        stops = local.stop_strings(config, "mlx")
        budget = local.max_tokens(config)
        prompts = self._render(inputs)
        encoded = [self._tokenizer.encode(prompt, add_special_tokens=item.text is not None)
                   for prompt, item in zip(prompts, inputs, strict=True)]
        if config.seed is not None:
            mx.random.seed(config.seed)
        # What mlx_lm.batch_generate does, plus a grammar matcher per sequence for a schema.
        generator: Any = BatchGenerator(
            self._model, stop_tokens=[[t] for t in self._tokenizer.eos_token_ids],
            sampler=sample_utils.make_sampler(**sampler_kwargs),
            logits_processors=sample_utils.make_logits_processors(**processor_kwargs) or None,
            **generator_kwargs)
        per_prompt = ([[self._json_processor(schema)] for _ in encoded] if schema is not None
                      else None)
        uids = generator.insert(encoded, [budget] * len(encoded), logits_processors=per_prompt)
        tokens: dict[int, list[int]] = {uid: [] for uid in uids}
        index = {uid: position for position, uid in enumerate(uids)}
        try:
            while responses := generator.next_generated():
                for response in responses:
                    if response.finish_reason != "stop":  # the eos itself is not kept
                        tokens[response.uid].append(int(response.token))
                        yield index[response.uid], int(response.token)
        finally:
            generator.close()
        results: list[Result[Generation[str], LLMError]] = []
        for prompt, ids, uid in zip(prompts, encoded, uids, strict=True):
            generated = tokens[uid]
            # batch_generate leaves out the eos that ended a sequence: one more token was made.
            ended = len(generated) < budget
            text, stopped = _cut_at_stop(self._tokenizer.decode(generated), stops)
            finish: FinishReason = "stop" if ended or stopped else "length"
            results.append(self._result(text, finish, len(ids), len(generated) + int(ended),
                                        {"prompt": prompt, "token_ids": generated}))
        return results

    def _json_processor(self, schema: StructuredOutput[Any]) -> Any:
        """A logits processor (one per sequence) that lets the model write only JSON valid for
        ``schema``, with xgrammar's matcher and a mask applied on MLX arrays."""
        try:
            import xgrammar
        except ImportError as exc:
            raise MissingDependencyError(
                message="structured outputs on the MLX provider need xgrammar: "
                "pip install 'llmbackend[mlx]'", provider="mlx", extra="mlx") from exc
        return _MLXGrammarProcessor(xgrammar, self._json_grammar(
            xgrammar, schema, self._tokenizer._tokenizer, self._model.args.vocab_size))


class _MLXGrammarProcessor:
    """Masks the logits of one sequence to the tokens its JSON grammar allows next."""

    def __init__(self, xgrammar: Any, grammar: Any) -> None:
        import numpy

        self._numpy = numpy
        self._matcher = xgrammar.GrammarMatcher(grammar)
        self._bitmask = xgrammar.allocate_token_bitmask(1, grammar.tokenizer_info.vocab_size)
        self._started = False

    def __call__(self, tokens: Any, logits: Any) -> Any:
        import mlx.core as mx

        # The first call sees the prompt; each later one, the prompt and one more token.
        if self._started and not self._matcher.is_terminated():
            self._matcher.accept_token(int(tokens[-1].item()))
        self._started = True
        if self._matcher.is_terminated():
            return logits
        self._matcher.fill_next_token_bitmask(self._bitmask)
        allowed = self._numpy.unpackbits(self._bitmask.numpy().view(self._numpy.uint8),
                                         bitorder="little")[: logits.shape[-1]].astype(bool)
        return mx.where(mx.array(allowed), logits, -mx.inf)


# --- vLLM -----------------------------------------------------------------------------------------


class VLLMEngine(Engine):
    """vLLM: one ``vllm.LLM`` (``llm_kwargs`` go there) and each batch in one ``llm.generate``
    call. ``config.extra`` goes to ``SamplingParams`` (penalties, ``top_k``, ``min_p``...), and
    a schema to ``StructuredOutputsParams(json=...)``. A stream is the whole call, its text in
    one delta at the end: the in-process ``LLM`` cannot stream."""

    provider = local.LOCAL_PROVIDERS["vllm"]

    def _load(self) -> None:
        from vllm import LLM

        self._llm: Any = LLM(model=self.model, **dict(self.options.get("llm_kwargs") or {}))
        self._tokenizer: Any = self._llm.get_tokenizer()

    def _unload(self) -> None:
        self.__dict__.pop("_llm", None)
        self.__dict__.pop("_tokenizer", None)

    def _generate(self, inputs: Sequence[local.PromptInput], config: GenerationConfig,
                  schema: StructuredOutput[Any] | None
                  ) -> list[Result[Generation[str], LLMError]]:
        from vllm import SamplingParams

        kwargs = local.vllm_sampling_kwargs(config)
        if schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=dict(schema.schema))
        try:
            params = SamplingParams(**kwargs)
        except TypeError as exc:  # an extra key SamplingParams does not have
            raise UnsupportedError(
                message=f"config.extra holds something vLLM's SamplingParams does not take: "
                f"{exc}", provider="vllm", parameter="extra") from exc
        prompts = self._render(inputs)
        # Token ids, not text: a rendered chat already holds its special tokens.
        requests = [{"prompt_token_ids": self._tokenizer.encode(
            prompt, add_special_tokens=item.text is not None)}
            for prompt, item in zip(prompts, inputs, strict=True)]
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        eos = self._tokenizer.eos_token_id
        results = []
        for prompt, output in zip(prompts, outputs, strict=True):
            completion = output.outputs[0]
            generated = [int(token) for token in completion.token_ids]
            kept = generated[:-1] if generated and generated[-1] == eos else generated
            finish: FinishReason = "length" if completion.finish_reason == "length" else "stop"
            results.append(self._result(completion.text, finish, len(output.prompt_token_ids),
                                        len(generated), {"prompt": prompt, "token_ids": kept}))
        return results


ENGINES: Mapping[str, type[Engine]] = {
    "transformers": TransformersEngine, "mlx": MLXEngine, "vllm": VLLMEngine,
}


def open_engine(provider: local.LocalProvider, model: str, options: Mapping[str, Any]) -> Engine:
    """A new engine for ``model`` (loaded on its first generation)."""
    require(provider)
    engine = ENGINES.get(provider.name)
    if engine is None:
        raise UnsupportedError(
            message=f"the {provider.label} provider is not available in this version of "
            "llmbackend yet", provider=provider.name, parameter="provider")
    return engine(model, options)
