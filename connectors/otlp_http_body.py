"""A request body's bytes, bounded: a size limit, a byte budget shared across requests, and gunzip.

`BodyCollector` gathers one body (decompressed) into one buffer and charges every byte to a
`PendingBudget` before holding it; `BoundedGunzip` streams gzip out under `zlib`'s `max_length`, so a
gzip bomb costs at most the limit. Both raise instead of growing: `BodyTooLarge`, `BudgetExhausted`,
`BadGzip`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable


class BodyTooLarge(Exception):
    """The decompressed body passed the size limit."""


class BadGzip(Exception):
    """The body is not a well-formed gzip stream."""


class BudgetExhausted(Exception):
    """Holding more bytes would pass the budget shared by all requests."""


class PendingBudget:
    """Bytes of request bodies held across all connections, against one ceiling."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def fits(self, amount: int) -> bool:
        """Whether `amount` more bytes would fit now (nothing is taken)."""
        return self.used + amount <= self.limit

    def reserve(self, amount: int) -> bool:
        """Take `amount` bytes from the budget; False (and nothing taken) if it would pass the limit."""
        if not self.fits(amount):
            return False
        self.used += amount
        return True

    def release(self, amount: int) -> None:
        self.used -= amount


class BodyCollector:
    """Collects one body's (decompressed) bytes into one buffer, charging the shared budget for each
    byte before holding it.

    One `bytearray` rather than a list of pieces: a body sent as a million 1-byte chunks then costs about
    its size (plus the buffer's growth slack), not ~40 bytes of object overhead per piece. Bytes are
    charged as they arrive, never for a length merely declared, so a head that promises a large body
    and sends nothing holds no budget.
    """

    def __init__(self, budget: PendingBudget, limit: int) -> None:
        self._budget, self._limit = budget, limit
        self._buffer = bytearray()
        self.reserved = 0

    def add(self, piece: bytes) -> None:
        """Hold `piece`, reserving budget for it first."""
        if len(self._buffer) + len(piece) > self._limit:
            raise BodyTooLarge
        if not self._budget.reserve(len(piece)):
            raise BudgetExhausted
        self.reserved += len(piece)
        self._buffer += piece

    def take(self) -> bytes:
        """The body as bytes, freeing the buffer at once (the copy and the buffer coexist only during this
        call, which has no await); the bytes stay charged to the budget until `release()`."""
        body = bytes(self._buffer)
        self._buffer = bytearray()
        return body

    def release(self) -> None:
        """Drop the buffer and give the budget back."""
        self._buffer = bytearray()
        self._budget.release(self.reserved)
        self.reserved = 0


class BoundedGunzip:
    """Streams a gzip body (one or more members) out in pieces, raising BodyTooLarge past `limit` bytes.

    `zlib`'s `max_length` keeps each step's output bounded, so a bomb costs at most the limit.
    """

    def __init__(self, limit: int, on_output: Callable[[bytes], None]) -> None:
        self._limit = limit
        self._on_output = on_output
        self._produced = 0
        self._member = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)

    def feed(self, data: bytes) -> None:
        """Decompress `data`, passing each output piece to `on_output`."""
        pending = data
        while pending:
            if self._member.eof:  # a concatenated member follows the previous one
                self._member = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            try:
                piece = self._member.decompress(pending, self._limit - self._produced + 1)
            except zlib.error as exc:
                raise BadGzip("the body is not valid gzip") from exc
            self._produced += len(piece)
            if self._produced > self._limit:
                raise BodyTooLarge
            if piece:
                self._on_output(piece)
            # Output stops short of max_length only once the input is used up, so a leftover tail
            # here means the limit was passed above; after a member's end, the rest is the next member.
            pending = self._member.unused_data if self._member.eof else b""

    def finish(self) -> None:
        """Check the stream ended cleanly (a truncated gzip body is a bad body, not an empty one; so is no
        body at all, as a decompressor fed nothing has not reached an end marker)."""
        if not self._member.eof:
            raise BadGzip("the gzip body ends before its end marker")
