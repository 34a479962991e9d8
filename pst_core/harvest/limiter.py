"""Request and token rate limits: a paced token bucket that adapts to 429s (AIMD).

Requests are paced, not burst: each send is given the earliest time that keeps the rate at or
below the limit over every window (a GCRA schedule with a burst of one request), so "--rpm 600"
never exceeds 600 in any minute and still reaches it. Tokens per minute use a bucket of a few
seconds' worth that may go briefly into debt when a response used more than estimated.

On a 429 the effective request rate drops multiplicatively (at most once per cool-down), and it
climbs back additively while responses succeed; only new sends are slowed, the request that got
the 429 waits out its own Retry-After, and nobody else stalls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


# Sends are spaced 0.5 % wider than the limit: the server sees arrival times with a few ms of
# network and event-loop jitter, and this slack (0.3 s per minute) keeps even jittered arrivals
# under the limit in every window, at the cost of 3 requests per minute at --rpm 600.
PACING_MARGIN = 0.005


class RateLimiter:
    """Paced requests/min plus tokens/min; both 0 means no limit (acquire returns at once)."""

    def __init__(
        self,
        rpm: float = 0.0,
        tpm: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
        decrease: float = 0.7,
        floor: float = 0.1,
        cooldown_s: float = 2.0,
    ) -> None:
        self.rpm, self.tpm = float(rpm), float(tpm)
        self.clock, self.sleep = clock, sleep
        self.decrease, self.floor, self.cooldown_s = decrease, floor, cooldown_s
        self.rate = self.rpm / 60.0  # effective requests/s, adapted by AIMD
        self._next = 0.0  # earliest time the next request may go
        self._tokens = self.tpm / 60.0 * 5.0  # start with 5 s worth of tokens
        self._tokens_at = clock()
        self._last_decrease = -1e18
        self.sent = 0

    @property
    def active(self) -> bool:
        return self.rpm > 0 or self.tpm > 0

    def reserve(self, tokens: float = 0.0) -> float:
        """Claim the next slot; returns how long to wait before sending (0 = now)."""
        now = self.clock()
        wait = 0.0
        if self.rpm > 0:
            start = max(now, self._next)
            self._next = start + (1.0 + PACING_MARGIN) / self.rate
            wait = start - now
        if self.tpm > 0:
            per_s = self.tpm / 60.0
            cap = per_s * 5.0
            self._tokens = min(cap, self._tokens + (now - self._tokens_at) * per_s)
            self._tokens_at = now
            self._tokens -= tokens
            if self._tokens < 0:  # wait until the debt is repaid
                wait = max(wait, -self._tokens / per_s)
        self.sent += 1
        return wait

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait for the next slot (no await at all when no limit is set)."""
        if not self.active:
            return
        wait = self.reserve(tokens)
        if wait > 0:
            await self.sleep(wait)

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the token bucket once the real usage of a request is known."""
        if self.tpm > 0:
            self._tokens += estimated - actual

    def on_success(self) -> None:
        """Additive increase: each success recovers 1 % of the configured rate."""
        if self.rpm > 0 and self.rate < self.rpm / 60.0:
            self.rate = min(self.rpm / 60.0, self.rate + self.rpm / 60.0 * 0.01)

    def on_rate_limited(self) -> None:
        """Multiplicative decrease on a 429, at most once per cool-down so a burst of 429s counts once."""
        now = self.clock()
        if self.rpm > 0 and now - self._last_decrease >= self.cooldown_s:
            self._last_decrease = now
            self.rate = max(self.rpm / 60.0 * self.floor, self.rate * self.decrease)
