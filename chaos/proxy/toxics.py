"""Toxics: typed, JSON-serialisable network faults for `chaos.proxy.Proxy`.

The toxics the scenarios use, named and shaped as in Shopify's Toxiproxy (its other toxics,
`bandwidth`, `slicer`, `slow_close` and `limit_data`, are left out: no scenario needs them).
All times are **milliseconds**. Every toxic has

- `name` (default `"<type>_<direction>"`, unique per proxy),
- `direction`: `"downstream"` (server -> client, the default as in Toxiproxy), `"upstream"`
  (client -> server) or `"both"`,
- `toxicity`: the probability (0..1) that the toxic applies to a given connection, drawn
  once per connection (when it opens, or when the toxic is added to an open connection) from
  a `random.Random` seeded with the proxy seed and the toxic name.

| type | fields | effect on the chosen direction(s) |
|---|---|---|
| `latency` | `latency`, `jitter` | each chunk is delivered `latency ± jitter` ms after it arrived |
| `timeout` | `timeout` | data is read and discarded; after `timeout` ms the connection is |
|   |   | closed (0: never, until the toxic is removed) |
| `reset_peer` | `timeout` | after `timeout` ms the connection is reset (TCP RST, `SO_LINGER` 0) |

The JSON shape is flat: `{"type": "latency", "name": "slow", "direction": "downstream",
"toxicity": 1.0, "latency": 200, "jitter": 20}`.

"Down" is not a toxic but a proxy state: see `Proxy.down()` / `Proxy.up()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Direction = Literal["upstream", "downstream", "both"]


class _Toxic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1, max_length=100)
    direction: Direction = "downstream"
    toxicity: float = Field(1.0, ge=0, le=1)

    @property
    def key(self) -> str:
        """The toxic's name, or the default `"<type>_<direction>"`."""
        kind: str = getattr(self, "type", "toxic")
        return self.name or f"{kind}_{self.direction}"

    def applies_to(self, direction: str) -> bool:
        return self.direction in (direction, "both")


class Latency(_Toxic):
    type: Literal["latency"] = "latency"
    latency: float = Field(0.0, ge=0, le=3_600_000)
    jitter: float = Field(0.0, ge=0, le=3_600_000)


class Timeout(_Toxic):
    type: Literal["timeout"] = "timeout"
    timeout: float = Field(0.0, ge=0, le=3_600_000)


class ResetPeer(_Toxic):
    type: Literal["reset_peer"] = "reset_peer"
    timeout: float = Field(0.0, ge=0, le=3_600_000)


Toxic = Annotated[Latency | Timeout | ResetPeer, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Toxic] = TypeAdapter(Toxic)


def parse_toxic(data: Toxic | Mapping[str, Any]) -> Toxic:
    """Validate a toxic from its JSON form. Raises ValidationError."""
    if isinstance(data, _Toxic):
        return data
    return _ADAPTER.validate_python(data)


def toxic_json(toxic: Toxic) -> dict[str, Any]:
    """The toxic as JSON, with its effective name."""
    return toxic.model_dump(mode="json") | {"name": toxic.key}
