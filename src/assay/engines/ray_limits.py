"""One stage's teacher requests spread over several Ray actors that share its limits.

An async stage (distill, judge, reward, ...) runs in `teacher_actors` asyncio actors
(`ASSAY_RAY_TEACHER_ACTORS`, default 1). With more than one, a `SharedLimits` actor holds the
stage's request-rate and token-rate buckets and its Retry-After pause, and every actor's client
asks it before each request (`RemoteLimits`, the same interface as the local
`assay.teacher.limits.Limits`); `max_concurrency` is split evenly between the actors, so the
stage never has more requests open, nor sends faster, than its config says, however many actors
serve it.
"""

from __future__ import annotations

from typing import Any

from assay.teacher.limits import Limits


class SharedLimits(Limits):
    """The stage's Limits as a Ray actor (async, so waiting requests do not hold a thread each)."""

    def ping(self) -> bool:
        return True


class RemoteLimits:
    """A client's view of a SharedLimits actor."""

    shared = True

    def __init__(self, handle: Any):
        self.handle = handle

    async def admit(self, tokens: float) -> None:
        await self.handle.admit.remote(tokens)

    async def wait(self) -> None:
        await self.handle.wait.remote()

    def hold(self, seconds: float) -> None:
        self.handle.hold.remote(seconds)  # fire and forget: every later admit waits for it

    def settle(self, delta: float) -> None:
        if delta:
            self.handle.settle.remote(delta)
