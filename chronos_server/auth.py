"""API keys and the principal behind a request.

A key reads `chr_<prefix>_<secret>`: the prefix (8 hex characters) identifies the key in
lists and logs and finds its record; the secret is 256 random bits. Only the SHA-256 of the
whole key is stored. A slow password hash (bcrypt, argon2) protects low-entropy secrets against
guessing; a 256-bit random secret cannot be guessed, so a fast hash loses nothing and keeps
authentication cheap on every request. Hashes are compared with `hmac.compare_digest`.

`Authenticator.authenticate` turns request headers into a `Principal`. It is the single entry
point: user sessions (OAuth, later) plug in as another credential it recognises, and every
route keeps depending on `Principal` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chronos_server.errors import NotFound, Unauthenticated
from chronos_server.storage import AccountStore, ApiKeyRecord, User

__all__ = [
    "API_KEY_HEADER",
    "Authenticator",
    "IssuedKey",
    "KeyManager",
    "Principal",
    "generate_api_key",
    "hash_api_key",
    "key_prefix",
]

API_KEY_HEADER = "x-api-key"
_KEY_PATTERN = re.compile(r"^chr_([0-9a-f]{8})_([A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. `user_id` is the tenant of everything the call reads or writes."""

    user_id: str
    key_id: str | None = None
    org_id: str | None = None

    @property
    def tenant(self) -> str:
        """The tenant of the caller's data."""
        return self.user_id


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key: `secret` is shown once and never stored."""

    secret: str
    record: ApiKeyRecord


def generate_api_key() -> tuple[str, str]:
    """A new key and its prefix."""
    prefix = secrets.token_hex(4)
    return f"chr_{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_api_key(key: str) -> bytes:
    """What is stored for a key."""
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match else None


class KeyManager:
    """Creates, lists and revokes keys, and bootstraps the owner account."""

    def __init__(self, accounts: AccountStore) -> None:
        self.accounts = accounts

    async def create_key(
        self, user_id: str, name: str = "default", org_id: str | None = None
    ) -> IssuedKey:
        """Issue a key for an existing user."""
        if await self.accounts.get_user(user_id) is None:
            raise NotFound(f"no user {user_id!r}")
        secret, prefix = generate_api_key()
        record = ApiKeyRecord(
            id=uuid.uuid4().hex,
            user_id=user_id,
            org_id=org_id,
            name=name,
            prefix=prefix,
            key_hash=hash_api_key(secret),
            created_at=datetime.now(UTC),
        )
        await self.accounts.create_api_key(record)
        return IssuedKey(secret=secret, record=record)

    async def owner(self) -> User | None:
        """The first account, if any."""
        users = await self.accounts.list_users()
        return users[0] if users else None

    async def bootstrap(self, email: str = "owner@localhost") -> IssuedKey | None:
        """On a store without accounts, create the owner and a first key; else None."""
        if await self.owner() is not None:
            return None
        user = await self.accounts.create_user(email=email, name="owner")
        return await self.create_key(user.id, name="first key")

    async def revoke(self, key_id_or_prefix: str) -> None:
        """Revoke a key by id or prefix."""
        if not await self.accounts.revoke_api_key(key_id_or_prefix, datetime.now(UTC)):
            raise NotFound(f"no active key {key_id_or_prefix!r}")


@dataclass(slots=True)
class _Verified:
    record: ApiKeyRecord
    checked_at: float


class Authenticator:
    """Resolves the credentials of a request to a `Principal`.

    A verified key is trusted for `cache_seconds` without asking the store again (so a
    revocation made by another process takes effect within that delay; one made through this
    process is immediate). Last use is written at most once per `last_used_interval` per key.
    """

    def __init__(
        self,
        accounts: AccountStore,
        *,
        cache_seconds: float = 5.0,
        last_used_interval: float = 60.0,
    ) -> None:
        self.accounts = accounts
        self.cache_seconds = cache_seconds
        self.last_used_interval = last_used_interval
        self._verified: dict[bytes, _Verified] = {}
        self._last_written: dict[str, float] = {}

    def forget(self, key_id_or_prefix: str) -> None:
        """Drop a key from the cache (after revoking it)."""
        for digest, verified in list(self._verified.items()):
            if key_id_or_prefix in (verified.record.id, verified.record.prefix):
                del self._verified[digest]

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal of a request, or `Unauthenticated`."""
        key = headers.get(API_KEY_HEADER)
        if not key:
            raise Unauthenticated(f"missing {API_KEY_HEADER} header")
        record = await self._verify(key.strip())
        await self._record_use(record)
        return Principal(user_id=record.user_id, key_id=record.id, org_id=record.org_id)

    async def _verify(self, key: str) -> ApiKeyRecord:
        digest = hash_api_key(key)
        now = time.monotonic()
        cached = self._verified.get(digest)
        if cached is not None and now - cached.checked_at < self.cache_seconds:
            return cached.record
        prefix = key_prefix(key)
        record = await self.accounts.find_api_key(prefix) if prefix else None
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise Unauthenticated("unknown API key")
        if record.revoked:
            self._verified.pop(digest, None)
            raise Unauthenticated("this API key has been revoked")
        if self.cache_seconds > 0:
            self._verified[digest] = _Verified(record=record, checked_at=now)
        return record

    async def _record_use(self, record: ApiKeyRecord) -> None:
        now = time.monotonic()
        last = self._last_written.get(record.id)
        if last is not None and now - last < self.last_used_interval:
            return
        self._last_written[record.id] = now
        await self.accounts.touch_api_key(record.id, datetime.now(UTC))
