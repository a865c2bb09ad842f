"""How the Redis broker reaches Redis: the URL, the key names, the Lua scripts and the one
connection pool every component shares (`Link`).

The scripts are files in `tickwire/brokers/lua/` (package data). Each one but `leader.lua`
gets `common.lua` prepended and is called with no keys and the key prefix as ARGV[1]; the
lease script is called on its own, with its key. The key layout is docs/redis.md.

Every value that is not a fixed word of the layout (a log name, a user id, a strategy id,
an index name, an address, a node id) enters a key as one *tagged* segment: `{` + the value
with `%`, `{` and `}` percent-encoded + `}` (`tag`; common.lua's `tag` is the same). A
fixed word never starts with `{` and a tagged segment ends at its first `}`, so no value
can produce a fixed key or another kind of key.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from tickwire.errors import BrokerUnavailable

DEFAULT_PREFIX = "tw"
MAX_REDIS_CONNECTIONS = 64  # per node, besides its subscription
# Scripts that share common.lua and take the prefix as ARGV[1].
PREFIXED_SCRIPTS = (
    "publish",
    "history",
    "snapshot",
    "presence",
    "heartbeat",
    "ratelimit",
    "ingest_skip",
    "ingest_reply",
    "journal",
)
LEADER = "leader"
# The token of an ingest reply key `<prefix>:reply:<token>` (ingest_reply.lua checks it too).
REPLY_TOKEN = rb"[A-Za-z0-9._-]{1,64}"
_TAG_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def tag(value: str) -> str:
    """A value as one key segment: `{value}`, its `%`, `{` and `}` percent-encoded."""
    if "%" in value or "{" in value or "}" in value:
        value = value.translate(_TAG_ESCAPES)
    return "{" + value + "}"


def split_url(url: str) -> tuple[str, str]:
    """`redis://host:port/db?prefix=p` -> (the URL for redis-py, the key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    kept = []
    for name, value in query:
        if name == "prefix":
            prefix = value or DEFAULT_PREFIX
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), prefix


def describe(redis_url: str) -> str:
    """Where Redis is, for messages: host:port without credentials."""
    return urlsplit(redis_url).netloc.rpartition("@")[2] or redis_url


class Keys:
    """The names of the keys and channels the Python side touches (Lua builds the rest)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = f"{prefix}:events"  # pub/sub: stamped batches
        self.control = f"{prefix}:control"  # pub/sub: broadcasts, evictions, pings, markers
        self.ingest = f"{prefix}:ingest"
        self.ingest_cursor = f"{prefix}:ingest:cursor"
        self.ingest_leader = f"{prefix}:ingest:leader"
        self.ingest_errors = f"{prefix}:ingest:errors"
        self._reply = re.compile(re.escape(f"{prefix}:reply:".encode()) + REPLY_TOKEN)

    def log(self, log: str) -> str:
        """What every key of a log starts with."""
        return f"{self.prefix}:log:{tag(log)}"

    def log_events(self, log: str) -> str:
        return f"{self.log(log)}:events"

    def state(self, log: str, kind: str) -> str:
        return f"{self.log(log)}:state:{kind}"

    def strategy(self, strategy_id: str) -> str:
        return f"{self.prefix}:strategy:{tag(strategy_id)}"

    def stored(self, log: str) -> str:
        """Processor state of a log: field name -> "version<TAB>JSON"."""
        return f"{self.log(log)}:ps"

    def index(self, name: str) -> str:
        return f"{self.prefix}:index:{tag(name)}"

    def journal(self, name: str) -> str:
        """A journal's sorted set (its hash and counter add `:r` and `:n`; journal.lua)."""
        return f"{self.prefix}:journal:{tag(name)}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{tag(name)}"

    def presence(self, user: str) -> str:
        return f"{self.prefix}:presence:{tag(user)}"

    def is_reply(self, key: bytes) -> bool:
        """Whether an ingest entry's `reply` names a reply list of this deployment."""
        return self._reply.fullmatch(key) is not None


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    text: str
    sha: str


def load_script(name: str, *, common: bool = True) -> Script:
    """A script from the package's `lua/` folder, with `common.lua` prepended unless told."""
    folder = resources.files("tickwire.brokers") / "lua"
    text = (folder / f"{name}.lua").read_text()
    if common:
        text = (folder / "common.lua").read_text() + "\n" + text
    return Script(name, text, hashlib.sha1(text.encode()).hexdigest())


def load_scripts() -> dict[str, Script]:
    scripts = {name: load_script(name) for name in PREFIXED_SCRIPTS}
    scripts[LEADER] = load_script(LEADER, common=False)
    return scripts


async def evalsha(client: Any, script: Script, numkeys: int, *args: Any) -> Any:
    """EVALSHA, or EVAL when Redis does not know the script (a restarted Redis); EVAL also
    puts it back in Redis's script cache."""
    try:
        return await client.evalsha(script.sha, numkeys, *args)
    except NoScriptError:
        return await client.eval(script.text, numkeys, *args)


class Link:
    """One Redis, as every component of the broker reaches it: a bounded connection pool
    and its client, the key names, the scripts, and how to say that Redis is away."""

    def __init__(self, redis_url: str, prefix: str, *, socket_timeout_s: float = 5.0) -> None:
        self.where = describe(redis_url)
        self.keys = Keys(prefix)
        self.scripts = load_scripts()
        # Commands wait for one of a bounded set of connections (a burst of attaches must
        # queue, not fail with "too many connections").
        self.pool = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=MAX_REDIS_CONNECTIONS,
            timeout=socket_timeout_s,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=min(2.0, socket_timeout_s),
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
            protocol=2,  # pub/sub messages as plain replies (RESP3 would route them to push handlers)
        )
        self.client = aioredis.Redis(connection_pool=self.pool)

    @property
    def prefix(self) -> str:
        return self.keys.prefix

    async def run(self, name: str, args: Sequence[Any], client: Any = None) -> Any:
        """Run a prefixed script (ARGV: prefix, *args) on `client` (default: the pool)."""
        return await evalsha(client or self.client, self.scripts[name], 0, self.keys.prefix, *args)

    def unavailable(self, exc: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(f"Redis at {self.where} is unreachable ({type(exc).__name__}: {exc})")

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.pool.disconnect()
