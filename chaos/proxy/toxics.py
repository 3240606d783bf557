"""Toxics: typed, JSON-serialisable network faults for `chaos.proxy.Proxy`.

The catalogue follows Shopify's Toxiproxy. All times are **milliseconds**. Every toxic has

- `name` (default `"<type>_<direction>"`, unique per proxy),
- `direction`: `"downstream"` (server -> client, the default as in Toxiproxy), `"upstream"`
  (client -> server) or `"both"`,
- `toxicity`: the probability (0..1) that the toxic applies to a given connection, drawn
  once per connection (when it opens, or when the toxic is added to an open connection) from
  a `random.Random` seeded with the proxy seed and the toxic name.

| type | fields | effect on the chosen direction(s) |
|---|---|---|
| `latency` | `latency`, `jitter` | each chunk is delivered `latency ± jitter` ms after it arrived |
| `bandwidth` | `rate` (KB/s) | data is paced to `rate` kilobytes per second |
| `timeout` (alias `blackhole`) | `timeout` | data is read and discarded; after `timeout` ms |
|   |   | the connection is closed (0: never, until the toxic is removed) |
| `reset_peer` | `timeout` | after `timeout` ms the connection is reset (TCP RST, `SO_LINGER` 0) |
| `slow_close` | `delay` | the close (EOF) is forwarded `delay` ms late |
| `slicer` | `average_size`, `size_variation`, `delay` | chunks are cut into slices of about |
|   |   | `average_size ± size_variation` bytes, `delay` ms apart |
| `limit_data` | `bytes` | after `bytes` bytes the connection is closed |

The JSON shape is flat: `{"type": "latency", "name": "slow", "direction": "downstream",
"toxicity": 1.0, "latency": 200, "jitter": 20}`. Toxiproxy's own shape is accepted too
(`{"type": ..., "stream": ..., "toxicity": ..., "attributes": {...}}`; `slicer.delay` is
then microseconds as in Toxiproxy and is converted).

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


class Bandwidth(_Toxic):
    type: Literal["bandwidth"] = "bandwidth"
    rate: float = Field(..., gt=0, description="KB/s")


class Timeout(_Toxic):
    type: Literal["timeout"] = "timeout"
    timeout: float = Field(0.0, ge=0, le=3_600_000)


class ResetPeer(_Toxic):
    type: Literal["reset_peer"] = "reset_peer"
    timeout: float = Field(0.0, ge=0, le=3_600_000)


class SlowClose(_Toxic):
    type: Literal["slow_close"] = "slow_close"
    delay: float = Field(0.0, ge=0, le=3_600_000)


class Slicer(_Toxic):
    type: Literal["slicer"] = "slicer"
    average_size: int = Field(1, ge=1)
    size_variation: int = Field(0, ge=0)
    delay: float = Field(0.0, ge=0, le=60_000)


class LimitData(_Toxic):
    type: Literal["limit_data"] = "limit_data"
    bytes: int = Field(..., ge=0)


Toxic = Annotated[
    Latency | Bandwidth | Timeout | ResetPeer | SlowClose | Slicer | LimitData,
    Field(discriminator="type"),
]
TOXIC_TYPES = (
    "latency",
    "bandwidth",
    "timeout",
    "reset_peer",
    "slow_close",
    "slicer",
    "limit_data",
)
_ADAPTER: TypeAdapter[Toxic] = TypeAdapter(Toxic)


def parse_toxic(data: Toxic | Mapping[str, Any]) -> Toxic:
    """Validate a toxic from its JSON form (ours or Toxiproxy's). Raises ValidationError."""
    if isinstance(data, _Toxic):
        return data
    raw = dict(data)
    if raw.get("type") == "blackhole":
        raw["type"] = "timeout"
    attributes = raw.pop("attributes", None)
    if isinstance(attributes, Mapping):
        attributes = dict(attributes)
        if raw.get("type") == "slicer" and "delay" in attributes:
            attributes["delay"] = float(attributes["delay"]) / 1000.0  # Toxiproxy: microseconds
        raw.update(attributes)
    elif attributes is not None:
        raw["attributes"] = attributes  # let validation report it
    if "stream" in raw and "direction" not in raw:
        raw["direction"] = raw.pop("stream")
    return _ADAPTER.validate_python(raw)


def toxic_json(toxic: Toxic) -> dict[str, Any]:
    """The toxic as JSON, with its effective name."""
    return toxic.model_dump(mode="json") | {"name": toxic.key}
