"""Python client for a fake's control API: `FakeControl`.

`base_url` may be the fake's root URL or any URL on it (`http://127.0.0.1:PORT/xmlapi2`
works too): only scheme, host and port are used. Rules can be given as `FaultRule`s,
mappings, or keyword arguments: `ctl.add_fault(status=503, first_n=2, path="/thing")`.
Errors from the fake (422 and others) raise `FakeControlError` with its `detail`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaos.closing import Closing
from chaos.fakes.faults import FaultRule
from chaos.fakes.log import RequestRecord

RuleLike = FaultRule | Mapping[str, Any]


class FakeControlError(RuntimeError):
    """The control API refused a request."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _rule_json(rule: RuleLike | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    if rule is None:
        parsed = FaultRule.model_validate(dict(fields))
    elif fields:
        raise TypeError("give a rule or keyword fields, not both")
    elif isinstance(rule, FaultRule):
        parsed = rule
    else:
        parsed = FaultRule.model_validate(dict(rule))
    return parsed.model_dump(mode="json", exclude_defaults=True)


def _rules_json(rules: Iterable[RuleLike]) -> list[dict[str, Any]]:
    return [_rule_json(rule, {}) for rule in rules]


def _query(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = str(response.json().get("detail", response.text))
        except ValueError:
            detail = response.text
        raise FakeControlError(response.status_code, detail)
    return response.json()


def _rules(payload: Any) -> list[FaultRule]:
    return [FaultRule.model_validate(item) for item in payload["rules"]]


class FakeControl(Closing):
    """Synchronous control client (harness, Locust, tests; async code uses `asyncio.to_thread`)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = _origin(base_url)
        self._client = httpx.Client(
            base_url=self.base_url + "/_control", timeout=timeout, trust_env=False
        )

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = _checked(self._client.get("/health"))
        return result

    def faults(self) -> list[FaultRule]:
        """The installed rules (with their assigned names)."""
        return [FaultRule.model_validate(item["rule"]) for item in self.fault_stats()]

    def fault_stats(self) -> list[dict[str, Any]]:
        """`[{"rule": {...}, "matched": n, "fired": n}, ...]`."""
        stats: list[dict[str, Any]] = _checked(self._client.get("/faults"))["rules"]
        return stats

    def set_faults(self, rules: Iterable[RuleLike]) -> list[FaultRule]:
        """Replace every rule (hanging requests of removed rules are released)."""
        return _rules(_checked(self._client.post("/faults", json=_rules_json(rules))))

    def add_fault(self, rule: RuleLike | None = None, /, **fields: Any) -> FaultRule:
        """Append one rule: `add_fault(FaultRule(...))` or `add_fault(status=503, ...)`."""
        payload = _checked(self._client.post("/faults/add", json=_rule_json(rule, fields)))
        return _rules(payload)[0]

    def clear(self) -> None:
        """Remove every rule."""
        _checked(self._client.delete("/faults"))

    def reset(self, *, seed: int | None = None) -> None:
        """Remove every rule and clear the request log (optionally re-seed)."""
        body = None if seed is None else {"seed": seed}
        _checked(self._client.post("/reset", json=body))

    def requests(
        self,
        *,
        since: int | None = None,
        path: str | None = None,
        status: int | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]:
        params = _query(since=since, path=path, status=status, rule=rule, limit=limit)
        payload = _checked(self._client.get("/requests", params=params))
        return [RequestRecord.from_dict(item) for item in payload["requests"]]

    def counters(self) -> dict[str, Any]:
        """`{"total", "in_flight", "by_status", "by_path", "by_rule", "by_outcome"}`."""
        payload = _checked(self._client.get("/requests", params={"limit": 0}))
        counters: dict[str, Any] = payload["counters"]
        return counters

    def count(
        self,
        *,
        path: str | None = None,
        status: int | None = None,
        rule: str | None = None,
        since: int | None = None,
    ) -> int:
        """How many logged requests match (path is the logical one, e.g. `/thing`)."""
        params = _query(since=since, path=path, status=status, rule=rule, limit=0)
        return int(_checked(self._client.get("/requests", params=params))["count"])

    def close(self) -> None:
        self._client.close()
