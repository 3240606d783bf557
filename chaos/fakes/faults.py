"""A small, typed, seeded HTTP fault engine shared by the fake upstreams.

A `FaultRule` says *which* requests it applies to (`path` glob, `match` on query parameters,
`method`), *what* happens to them (a status, a body, headers, a delay, a hang, an oversize
body) and *how often* (`first_n`, `probability`). A `FaultEngine` holds an ordered list of
rules and, for each request, returns the first rule that fires, or `None` (serve normally).

How a request is decided (`FaultEngine.decide`):

1. Rules are tried in order. A rule with `first_n` that has already fired `first_n` times is
   skipped (it stays installed, so `/_control/faults` shows its counts).
2. A rule whose filters do not match is skipped.
3. A rule with `probability < 1` draws from its *own* `random.Random`, seeded from the engine
   seed and the rule's position. A miss falls through to the next rule. The same seed, the
   same rules and the same request sequence therefore give the same decisions, and one
   rule's draws do not depend on traffic that another rule saw.
4. Otherwise the rule fires. The returned rule is the installed one with `delay` resolved
   (jitter drawn and folded into `delay`, `jitter` set to 0), so callers just sleep `delay`.

What a rule does (applied by `chaos.fakes.app.FakeApp`; all times are in **seconds**):

- `hang`: accept the request and answer nothing until the rule is removed (clear, reset or a
  replacing `set_rules`), the client goes away or the server stops. A hang released by a
  rule change goes on with the rest of the rule (delay, status, body), or the normal answer.
- `delay` (+ `jitter`): wait, then answer.
- `status`: override the status. Without a body override the body follows the status:
  202 -> the real BGG "queued" `<message>`, 429 -> the real "Rate limit exceeded." body,
  other 2xx -> the normal body, anything else -> an HTML error page (what a proxy in front
  of BGG sends).
- `body`: one of `BODY_KINDS` (see `chaos.fakes.bodies`); `text`: a raw text body;
  `oversize`: stream that many bytes (never held in memory). At most one of the three.
- `content_type`, `headers`, `retry_after` (sets `Retry-After`), `chunked` (no
  `Content-Length`; the body goes out with chunked transfer encoding).
- A rule with none of these is a *pass* rule: the request is answered normally, but the
  rule still counts. `sequence([503, 503, 200, 503])` uses that for scripted sequences.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BodyKind = Literal["html", "truncated", "broken", "empty", "bomb", "error", "queued", "ratelimit"]
BODY_KINDS: tuple[str, ...] = typing.get_args(BodyKind)

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_HEADER_VALUE = re.compile(r"[\x00\r\n]")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the engine (and a fake's handler) sees of one HTTP request.

    `path` is the logical path (for the fake BGG without the `/xmlapi2` prefix), `raw_path`
    the path as received. `query` keeps the last value of each parameter; `headers` has
    lower-case names.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    query_string: str = ""
    raw_path: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class FaultRule(BaseModel):
    """One fault. JSON-serialisable; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1, max_length=100, description="Label in the log.")

    # Which requests.
    path: str | None = Field(None, description="fnmatch glob on the logical path, e.g. /thing.")
    match: dict[str, str] = Field(
        default_factory=dict, description="Query parameter -> fnmatch glob, all must match."
    )
    method: str | None = None

    # What happens.
    status: int | None = Field(None, ge=200, le=599)
    retry_after: int | str | None = Field(None, description="Seconds (or a raw header value).")
    body: BodyKind | None = None
    text: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    delay: float = Field(0.0, ge=0, le=3600)
    jitter: float = Field(0.0, ge=0, le=3600)
    hang: bool = False
    oversize: int | None = Field(None, ge=0, description="Stream a body of this many bytes.")
    chunked: bool = False

    # How often.
    first_n: int | None = Field(None, ge=1, description="Fire at most this many times.")
    probability: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> FaultRule:
        given = [k for k in ("body", "text", "oversize") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are mutually exclusive")
        if isinstance(self.retry_after, int) and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        values = dict(self.headers)
        if self.content_type is not None:
            values["content-type"] = self.content_type
        if isinstance(self.retry_after, str):
            values["retry-after"] = self.retry_after
        for key, value in values.items():
            if not _HEADER_NAME.match(key):
                raise ValueError(f"invalid header name {key!r}")
            if _BAD_HEADER_VALUE.search(value):
                raise ValueError(f"header {key!r} has a CR, LF or NUL in its value")
        return self

    @field_validator("method")
    @classmethod
    def _upper_method(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()

    @property
    def passthrough(self) -> bool:
        """True if the rule changes nothing about the answer (a counting-only rule)."""
        return (
            self.status is None
            and self.body is None
            and self.text is None
            and self.oversize is None
            and self.content_type is None
            and not self.headers
            and self.retry_after is None
            and self.delay == 0
            and self.jitter == 0
            and not self.hang
        )

    def matches(self, request: RequestInfo) -> bool:
        """Whether the rule's filters (method, path, query) select this request."""
        if self.method is not None and request.method.upper() != self.method:
            return False
        if self.path is not None and not fnmatch.fnmatchcase(request.path, self.path):
            return False
        for key, pattern in self.match.items():
            value = request.query.get(key)
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True


def sequence(
    steps: Sequence[int | FaultRule | None],
    *,
    path: str | None = None,
    match: Mapping[str, str] | None = None,
    method: str | None = None,
    name: str = "seq",
) -> list[FaultRule]:
    """A scripted sequence as one-shot rules: `sequence([503, 503, 200])`.

    Each step becomes a rule with `first_n=1`, named `"{name}-{i}"`, sharing the filters.
    An int is a status (200 or `None` means "let one request through unchanged"), a
    `FaultRule` is used as given (its own filters win over the shared ones). Install the
    result with `FaultEngine.set_rules` / `FakeControl.set_faults`. After the last step,
    requests pass.
    """
    shared: dict[str, Any] = {}
    if path is not None:
        shared["path"] = path
    if match:
        shared["match"] = dict(match)
    if method is not None:
        shared["method"] = method
    rules: list[FaultRule] = []
    for index, step in enumerate(steps):
        data: dict[str, Any] = dict(shared)
        if isinstance(step, FaultRule):
            data.update(step.model_dump(exclude_defaults=True))
        elif step is not None and step != 200:
            data["status"] = step
        data["first_n"] = 1
        data["name"] = f"{name}-{index}"
        rules.append(FaultRule.model_validate(data))
    return rules


@dataclass(slots=True)
class _Installed:
    rule: FaultRule
    rng: random.Random
    matched: int = 0
    fired: int = 0


class FaultEngine:
    """An ordered, thread-safe list of fault rules with per-rule seeded randomness."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._installed: list[_Installed] = []
        self._next_index = 0
        self._generation = 0
        self._listeners: list[Callable[[], None]] = []
        rules = list(rules)
        if rules:
            self.set_rules(rules)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def generation(self) -> int:
        """Bumped whenever rules are removed or replaced (this is what releases hangs)."""
        return self._generation

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (from the changing thread, outside the lock) after any change."""
        with self._lock:
            self._listeners.append(callback)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [inst.rule for inst in self._installed]

    def stats(self) -> list[dict[str, Any]]:
        """Each installed rule as JSON with how often it matched and fired."""
        with self._lock:
            return [
                {
                    "rule": inst.rule.model_dump(mode="json", exclude_defaults=True),
                    "matched": inst.matched,
                    "fired": inst.fired,
                }
                for inst in self._installed
            ]

    def set_rules(self, rules: Iterable[FaultRule]) -> list[FaultRule]:
        """Replace all rules (positions, and so random streams, restart at 0)."""
        rules = list(rules)
        with self._lock:
            installed = self._prepare(rules, start=0, existing=())
            self._installed = installed
            self._next_index = len(installed)
            self._generation += 1
            listeners = list(self._listeners)
        self._notify(listeners)
        return [inst.rule for inst in installed]

    def add(self, rule: FaultRule) -> FaultRule:
        """Append one rule after the existing ones."""
        with self._lock:
            (inst,) = self._prepare([rule], start=self._next_index, existing=self._installed)
            self._installed.append(inst)
            self._next_index += 1
            listeners = list(self._listeners)
        self._notify(listeners)
        return inst.rule

    def clear(self) -> None:
        """Remove every rule (releases hangs)."""
        with self._lock:
            self._installed = []
            self._next_index = 0
            self._generation += 1
            listeners = list(self._listeners)
        self._notify(listeners)

    def reset(self, seed: int | None = None) -> None:
        """Remove every rule and optionally change the seed."""
        with self._lock:
            if seed is not None:
                self._seed = seed
        self.clear()

    def decide(self, request: RequestInfo) -> FaultRule | None:
        """The rule to apply to `request` (delay resolved), or `None` to serve normally."""
        with self._lock:
            for inst in self._installed:
                rule = inst.rule
                if rule.first_n is not None and inst.fired >= rule.first_n:
                    continue
                if not rule.matches(request):
                    continue
                inst.matched += 1
                if rule.probability < 1.0 and inst.rng.random() >= rule.probability:
                    continue
                inst.fired += 1
                if rule.jitter:
                    delay = max(0.0, rule.delay + inst.rng.uniform(-rule.jitter, rule.jitter))
                    return rule.model_copy(update={"delay": delay, "jitter": 0.0})
                return rule
            return None

    def _prepare(
        self, rules: list[FaultRule], *, start: int, existing: Iterable[_Installed]
    ) -> list[_Installed]:
        names = {inst.rule.name for inst in existing}
        out: list[_Installed] = []
        for offset, rule in enumerate(rules):
            index = start + offset
            if rule.name is None:
                rule = rule.model_copy(update={"name": f"rule-{index}"})
            if rule.name in names:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            names.add(rule.name)
            out.append(_Installed(rule=rule, rng=random.Random(f"{self._seed}:{index}")))
        return out

    @staticmethod
    def _notify(listeners: list[Callable[[], None]]) -> None:
        for callback in listeners:
            callback()
