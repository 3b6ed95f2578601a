"""The conftest guard really blocks everything but 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

import llmbackend
from llmbackend import TransportError
from tests.conftest import NetworkBlockedError


@pytest.mark.parametrize("address", [("10.255.255.1", 443), ("8.8.8.8", 53)])
def test_outside_addresses_are_refused(address: tuple[str, int]) -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlockedError):
        sock.connect(address)


def test_name_resolution_is_refused() -> None:
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("api.openai.com", 443)


def test_a_client_pointed_at_the_real_api_cannot_reach_it() -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", api_key="sk-test", max_retries=0)
    with pytest.raises((NetworkBlockedError, TransportError)):
        client.get_response("hi")


def test_the_async_face_cannot_reach_it_either() -> None:
    import asyncio

    client = llmbackend.client("openai", "gpt-4o-mini", api_key="sk-test", max_retries=0)
    with pytest.raises((NetworkBlockedError, TransportError)) as raised:
        asyncio.run(client.aget_response("hi"))
    client.close()
    # the guard's refusal, whether raised as is or as the transport's typed error around it
    assert isinstance(raised.value, NetworkBlockedError) or "blocked" in str(raised.value).lower()
