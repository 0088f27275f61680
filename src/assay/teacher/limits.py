"""Request-rate and token-rate limits shared by every request of a stage (one event loop, or
several Ray actors through assay.engines.ray_limits)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`per_minute` units refill evenly; a full bucket allows a burst of one minute's worth."""

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        # One waiter at a time, in arrival order: later requests cannot starve an early big one.
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                # short naps: an answer's usage may give back estimated tokens meanwhile
                await asyncio.sleep(min((amount - self.level) / self.rate, 0.25))

    def adjust(self, delta: float) -> None:
        """Give back (positive) or take (negative) units once the true cost is known."""
        self._refill()
        self.level = min(self.capacity, self.level + delta)


class Limits:
    """A stage's request limits in one event loop: the request-rate and token-rate buckets and the
    Retry-After pause. On Ray, several actors may share one set (assay.engines.ray_limits)."""

    shared = False

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.pause = Pause()

    async def admit(self, tokens: float) -> None:
        """Wait until one more request of about `tokens` tokens may go."""
        await self.pause.wait()
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)

    async def wait(self) -> None:
        await self.pause.wait()

    def hold(self, seconds: float) -> None:
        self.pause.hold(seconds)

    def settle(self, delta: float) -> None:
        """Tokens estimated minus tokens used, once an answer says how many it used."""
        if self.tpm is not None and delta:
            self.tpm.adjust(delta)


class Pause:
    """A shared 'not before' time: a 429 with Retry-After holds back every request, not just one."""

    def __init__(self) -> None:
        self.until = 0.0

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    async def wait(self) -> None:
        while (left := self.until - time.monotonic()) > 0:
            await asyncio.sleep(left)
