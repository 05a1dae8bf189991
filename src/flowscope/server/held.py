"""Read a response whole before it goes out, to rewrite it: shared by the middlewares that
move the dashboard's links under its prefix and that turn a part's absence into a 503."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message, Send


def holding_send(
    send: Send,
    hold: Callable[[Message], bool],
    answer: Callable[[Message, bytes], Awaitable[None]],
) -> Send:
    """A ``send`` that passes every message on, but for a response whose start message
    ``hold`` picks (it may also adjust its headers): that one is read whole and handed to
    ``answer`` with its body, which sends what goes out instead."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def holding(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            if hold(message):
                held = message
                return
        elif held is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await answer(held, b"".join(chunks))
            return
        await send(message)

    return holding
