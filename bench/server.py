"""A fast loopback HTTP/1.1 server for benchmarks: answers every POST with one canned body.

Run as ``python bench/server.py PORT_FILE [DELAY_S] [openai|anthropic]``: it binds 127.0.0.1 on a
free port, writes the port to PORT_FILE and serves until killed, answering an OpenAI Responses
object (the default) or an Anthropic message after DELAY_S seconds. asyncio's protocol layer
keeps the server's own cost per request small and steady, so that differences between clients
show.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

BODY = json.dumps({
    "id": "resp_68c2e8c147ac819491bcd667055eadbc02e845978fbbb592", "object": "response",
    "created_at": 1757604033, "status": "completed", "background": False, "error": None,
    "incomplete_details": None, "instructions": None, "max_output_tokens": None,
    "model": "gpt-4o-mini-2024-07-18",
    "output": [{"id": "msg_68c2e8c26114819489dae5b59fceb7bf02e845978fbbb592", "type": "message",
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                             "text": "Waves fold into light / salt breath of the patient deep "
                                     "/ the moon keeps the time"}]}],
    "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None,
                                                                             "summary": None},
    "service_tier": "default", "store": True, "temperature": 0.7,
    "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
    "tools": [], "top_p": 1.0, "truncation": "disabled",
    "usage": {"input_tokens": 14, "input_tokens_details": {"cached_tokens": 0,
                                                           "cache_write_tokens": 0},
              "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
              "total_tokens": 34},
    "user": None, "metadata": {},
}).encode()
ANTHROPIC_BODY = json.dumps({
    "model": "claude-sonnet-4-5-20250929", "id": "msg_01EXuhhFC9buDpjCcznFPSDs",
    "type": "message", "role": "assistant",
    "content": [{"type": "text", "text": "Waves fold into light / salt breath of the patient deep "
                                         "/ the moon keeps the time"}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 17, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 20, "service_tier": "standard"},
}).encode()


def response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


RESPONSE = response(BODY)
ANTHROPIC_RESPONSE = response(ANTHROPIC_BODY)


class Reply(asyncio.Protocol):
    def __init__(self, delay: float, answer: bytes = RESPONSE) -> None:
        self.buffer = b""
        self.delay = delay
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            if self.delay:
                asyncio.get_running_loop().call_later(self.delay, self.transport.write,
                                                      self.answer)
            else:
                self.transport.write(self.answer)


async def main(port_file: Path, delay: float, kind: str = "openai") -> None:
    loop = asyncio.get_running_loop()
    answer = ANTHROPIC_RESPONSE if kind == "anthropic" else RESPONSE
    server = await loop.create_server(lambda: Reply(delay, answer), "127.0.0.1", 0,
                                      backlog=1024)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0,
                     sys.argv[3] if len(sys.argv) > 3 else "openai"))
