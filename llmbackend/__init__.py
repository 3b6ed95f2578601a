"""llmbackend: a small, fast, provider-agnostic client for text LLMs (facade re-exports only).

Seed face: ``get_response``, ``client`` (values or exceptions). Typed face: ``generate`` and
``Client.generate`` (``Result[Generation[T], LLMError]``). Pure builders and parsers live in
``llmbackend.providers.<name>`` and compose with ``llmbackend.pipeline``.
"""

# Not ``typing.TYPE_CHECKING``: importing typing alone costs more than this whole module.
# Type checkers treat any constant named TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from llmbackend.api import (
        Client,
        LLMBackendWarning,
        acreate_batch,
        agenerate,
        aget_batch,
        aget_response,
        arestore_batch,
        astream,
        client,
        create_batch,
        generate,
        get_batch,
        get_response,
        restore_batch,
        stream,
    )
    from llmbackend.batching import BatchCounts, BatchState, BatchStatus
    from llmbackend.errors import (
        BatchItemFailure,
        BatchItemsError,
        BatchNotReadyError,
        BlockedError,
        ConfigurationError,
        HTTPStatusError,
        InvalidSchemaError,
        LLMError,
        MissingCredentialsError,
        MissingDependencyError,
        NoTextError,
        OutputError,
        ProviderError,
        RefusalError,
        RequestTimeoutError,
        ResponseParseError,
        SchemaValidationError,
        StreamError,
        ToolCallError,
        TransportError,
        TruncationError,
        UnsupportedError,
    )
    from llmbackend.jobs import Batch, CompletedBatch
    from llmbackend.messages import Input, Message, MessageDict
    from llmbackend.streaming import AsyncTextStream, TextStream
    from llmbackend.types import Generation, GenerationConfig, StructuredOutput, Usage

__version__ = "0.1.0"

__all__ = [
    "AsyncTextStream",
    "Batch",
    "BatchCounts",
    "BatchItemFailure",
    "BatchItemsError",
    "BatchNotReadyError",
    "BatchState",
    "BatchStatus",
    "BlockedError",
    "Client",
    "CompletedBatch",
    "ConfigurationError",
    "Generation",
    "GenerationConfig",
    "HTTPStatusError",
    "Input",
    "InvalidSchemaError",
    "LLMBackendWarning",
    "LLMError",
    "Message",
    "MessageDict",
    "MissingCredentialsError",
    "MissingDependencyError",
    "NoTextError",
    "OutputError",
    "ProviderError",
    "RefusalError",
    "RequestTimeoutError",
    "ResponseParseError",
    "SchemaValidationError",
    "StreamError",
    "StructuredOutput",
    "TextStream",
    "ToolCallError",
    "TransportError",
    "TruncationError",
    "UnsupportedError",
    "Usage",
    "__version__",
    "acreate_batch",
    "agenerate",
    "aget_batch",
    "aget_response",
    "arestore_batch",
    "astream",
    "client",
    "create_batch",
    "generate",
    "get_batch",
    "get_response",
    "restore_batch",
    "stream",
]

# Strategy: the names above load on first access (PEP 562), so ``import llmbackend`` costs about a
# millisecond and a program pays for the pipeline (attrs, returns, our modules) only when it uses
# it; httpx2, jsonschema, cattrs and Pydantic wait further, until a request or a schema needs them.
_HOME = {
    **dict.fromkeys(("Client", "LLMBackendWarning", "acreate_batch", "agenerate", "aget_batch",
                     "aget_response", "arestore_batch", "client", "create_batch", "generate",
                     "get_batch", "get_response", "restore_batch", "stream", "astream"),
                    "llmbackend.api"),
    **dict.fromkeys(("TextStream", "AsyncTextStream"), "llmbackend.streaming"),
    **dict.fromkeys(("BatchCounts", "BatchState", "BatchStatus"), "llmbackend.batching"),
    "Batch": "llmbackend.jobs",
    "CompletedBatch": "llmbackend.jobs",
    **dict.fromkeys(("Input", "Message", "MessageDict"), "llmbackend.messages"),
    **dict.fromkeys(("Generation", "GenerationConfig", "StructuredOutput", "Usage"),
                    "llmbackend.types"),
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name stays an error

    def __getattr__(name):
        if name not in __all__:
            raise AttributeError(f"module 'llmbackend' has no attribute {name!r}")
        value = getattr(__import__(_HOME.get(name, "llmbackend.errors"), fromlist=[name]), name)
        globals()[name] = value
        return value

    def __dir__():
        return sorted(__all__)
