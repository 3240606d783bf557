"""Admin tokens, held only as SHA-256 digests and compared in constant time.

Every configured token is kept as its digest (a `sha256:<hex>` entry already is one). A
presented token is hashed and compared with every digest, without an early exit, so neither
the answer time nor a memory dump gives a token away.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from pydantic import SecretStr

HASH_PREFIX = "sha256:"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AdminTokens:
    """The set of accepted admin tokens, held as digests."""

    def __init__(self, tokens: Iterable[SecretStr | str]) -> None:
        self._digests: list[bytes] = []
        for entry in tokens:
            raw = entry.get_secret_value() if isinstance(entry, SecretStr) else entry
            if raw.startswith(HASH_PREFIX):
                self._digests.append(parse_hashed_token(raw))
            else:
                self._digests.append(_digest(raw))

    @property
    def configured(self) -> bool:
        """Whether any admin token is configured."""
        return bool(self._digests)

    def verify(self, presented: str) -> bool:
        """Whether `presented` is one of the tokens, without an early exit on a match."""
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched


def parse_hashed_token(entry: str) -> bytes:
    """The digest in a `sha256:<64 hex digits>` entry; ValueError when it is not one."""
    hex_part = entry.removeprefix(HASH_PREFIX)
    if len(hex_part) != 64:
        raise ValueError("a sha256: admin token needs exactly 64 hex digits")
    try:
        return bytes.fromhex(hex_part)
    except ValueError:
        raise ValueError("a sha256: admin token needs exactly 64 hex digits") from None
