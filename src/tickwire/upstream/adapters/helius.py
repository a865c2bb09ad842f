"""Helius: Solana transactions over its enhanced WebSocket (JSON-RPC 2.0), as `trade:new`
events on the public `chain` log, keyed by account.

Stream `wss://mainnet.helius-rpc.com/?api-key=KEY` (a bad key is refused at the handshake).
The symbols are account addresses (read on `GET /api/stream/chain?symbols=ADDR`).
- `{"jsonrpc":"2.0","id":7,"method":"transactionSubscribe","params":[{"accountInclude":[A,B],
  "vote":false,"failed":true},{"commitment":"confirmed","encoding":"jsonParsed",
  "transactionDetails":"full","maxSupportedTransactionVersion":0}]}` -> `{"jsonrpc":"2.0",
  "result":4743323479349712,"id":7}` (the subscription id); one subscription per batch of at
  most 100 accounts. `transactionUnsubscribe` takes `[subscription id]`: dropping accounts
  unsubscribes their batch and subscribes what remains of it.
- notifications `{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":
  N,"result":{"signature":S,"slot":123,"transaction":{"meta":{"err":null,"fee":5000,...},
  "transaction":{"message":{"accountKeys":[{"pubkey":A,...},...]},...}}}}}`: one `trade:new`
  per subscribed account the transaction names (`tradeId` = signature, `slot`, `status`
  success|failed, `fee`); a signature seen before is dropped.
- errors `{"jsonrpc":"2.0","error":{"code":-32602,"message":"..."},"id":7}` are counted.
- keepalive: WebSocket ping frames (Helius closes sockets idle for 10 minutes).
REST fallback: JSON-RPC over HTTP POST to `{rest_url}?api-key=KEY`, a batch of
`getSignaturesForAddress` `[ADDR, {"limit": 20}]` -> `[{"signature","slot","err","blockTime"}]`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

from tickwire.domain.catalog import CHAIN_LOG
from tickwire.upstream.adapters.base import (
    Adapter,
    Options,
    check_answer,
    json_frame,
    load_json,
    with_query,
)
from tickwire.upstream.model import (
    TRADE,
    ConnectSpec,
    Frame,
    HttpRequest,
    Malformed,
    Parsed,
    Update,
)


class HeliusOptions(Options):
    commitment: Literal["processed", "confirmed", "finalized"] = "confirmed"
    vote: bool = False
    failed: bool = True
    poll_limit: int = 20


class HeliusAdapter(Adapter):
    kind = "helius"
    feeds = CHAIN_LOG
    default_url = "wss://mainnet.helius-rpc.com/"
    default_rest_url = "https://mainnet.helius-rpc.com/"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opts = self.options(HeliusOptions)
        self.reset()

    def reset(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, list[str]] = {}  # request id -> accounts being subscribed
        self._groups: dict[int, list[str]] = {}  # subscription id -> its accounts
        self._group_of: dict[str, int] = {}  # account -> subscription id
        self._cancelled: set[str] = set()  # dropped while their subscribe was unanswered

    def connect(self) -> ConnectSpec:
        return ConnectSpec(with_query(self.url, **{"api-key": self.token}))

    def subscribe(self, symbols: Sequence[str]) -> list[Frame]:
        request_id = next(self._ids)
        self._pending[request_id] = list(symbols)
        self._cancelled.difference_update(symbols)
        params = [
            {"accountInclude": list(symbols), "vote": self.opts.vote, "failed": self.opts.failed},
            {
                "commitment": self.opts.commitment,
                "encoding": "jsonParsed",
                "transactionDetails": "full",
                "maxSupportedTransactionVersion": 0,
            },
        ]
        return [_rpc(request_id, "transactionSubscribe", params)]

    def unsubscribe(self, symbols: Sequence[str]) -> list[Frame]:
        dropped = set(symbols)
        frames: list[Frame] = []
        for sub_id in sorted({self._group_of[s] for s in dropped if s in self._group_of}):
            frames += self._regroup(sub_id, dropped)
        pending = {s for accounts in self._pending.values() for s in accounts}
        self._cancelled.update(dropped & pending)
        return frames

    def _regroup(self, sub_id: int, dropped: set[str]) -> list[Frame]:
        """Unsubscribe a batch and subscribe what remains of it."""
        accounts = self._groups.pop(sub_id, [])
        for account in accounts:
            self._group_of.pop(account, None)
        frames = [_rpc(next(self._ids), "transactionUnsubscribe", [sub_id])]
        remaining = [a for a in accounts if a not in dropped]
        return frames + (self.subscribe(remaining) if remaining else [])

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        message = load_json(frame)
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            raise Malformed("a Helius message is a JSON-RPC 2.0 object")
        if message.get("method") == "transactionNotification":
            return Parsed(updates=self._notification(message.get("params")))
        request_id = message.get("id")
        if "error" in message:
            accounts = self._pending.pop(request_id, []) if isinstance(request_id, int) else []
            error = message["error"] if isinstance(message["error"], dict) else {}
            text = f"Helius error {error.get('code')}: {str(error.get('message'))[:200]}"
            if accounts:
                text += f" ({len(accounts)} accounts not subscribed)"
            return Parsed(error=text)
        if isinstance(request_id, int) and request_id in self._pending:
            return self._subscribed(request_id, message.get("result"))
        return Parsed()  # an unsubscribe's `true`

    def _subscribed(self, request_id: int, sub_id: Any) -> Parsed:
        accounts = self._pending.pop(request_id)
        if not isinstance(sub_id, int):
            raise Malformed("transactionSubscribe answered without a subscription id")
        self._groups[sub_id] = accounts
        for account in accounts:
            self._group_of[account] = sub_id
        cancelled = self._cancelled.intersection(accounts)
        if not cancelled:
            return Parsed()
        self._cancelled -= cancelled
        return Parsed(reply=self._regroup(sub_id, cancelled))

    def _notification(self, params: Any) -> list[Update]:
        if not isinstance(params, dict) or not isinstance(params.get("result"), dict):
            raise Malformed("transactionNotification without params.result")
        accounts = self._groups.get(params.get("subscription"))  # type: ignore[arg-type]
        result = params["result"]
        signature = result.get("signature")
        if not isinstance(signature, str) or accounts is None:
            raise Malformed("a notification without signature, or of an unknown subscription")
        named = _account_keys(result.get("transaction"))
        matched = [a for a in accounts if a in named] if named else accounts
        tx = result.get("transaction")
        meta = tx.get("meta") if isinstance(tx, dict) else None
        data: dict[str, Any] = {"tradeId": signature, "signature": signature}
        if isinstance(result.get("slot"), int):
            data["slot"] = result["slot"]
        if isinstance(meta, dict):
            data["status"] = "failed" if meta.get("err") is not None else "success"
            if isinstance(meta.get("fee"), int):
                data["fee"] = meta["fee"]
        block_time = result.get("blockTime")
        ts = block_time * 1000 if isinstance(block_time, int) else None
        return [Update(TRADE, a, {**data, "symbol": a}, exchange_ts=ts, key=signature) for a in matched]

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        body = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "getSignaturesForAddress",
                "params": [s, {"limit": self.opts.poll_limit, "commitment": self.opts.commitment}],
            }
            for i, s in enumerate(symbols)
        ]
        url = with_query(self.rest_url, **{"api-key": self.token})
        return [HttpRequest("POST", url, {"content-type": "application/json"}, body, tuple(symbols))]

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "Helius refused the API key", "Helius getSignaturesForAddress")
        answers = load_json(body)
        if not isinstance(answers, list):
            raise Malformed("a JSON-RPC batch is answered by a list")
        updates = []
        for answer in answers:
            index = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(request.symbols):
                continue
            for item in answer.get("result") or []:
                if isinstance(item, dict) and isinstance(item.get("signature"), str):
                    updates.append(_polled(request.symbols[index], item))
        return updates


def _rpc(request_id: int, method: str, params: list[Any]) -> Frame:
    return json_frame({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _account_keys(tx: Any) -> set[str]:
    """The accounts a jsonParsed transaction names (empty when the details are absent)."""
    inner = tx.get("transaction") if isinstance(tx, dict) else None
    if not isinstance(inner, dict):
        return set()
    message = inner.get("message") if isinstance(inner.get("message"), dict) else inner
    keys = message.get("accountKeys") if isinstance(message, dict) else None
    found = set()
    for key in keys if isinstance(keys, list) else []:
        if isinstance(key, str):
            found.add(key)
        elif isinstance(key, dict) and isinstance(key.get("pubkey"), str):
            found.add(key["pubkey"])
    return found


def _polled(account: str, item: dict[str, Any]) -> Update:
    signature = item["signature"]
    data: dict[str, Any] = {"tradeId": signature, "signature": signature, "symbol": account}
    if isinstance(item.get("slot"), int):
        data["slot"] = item["slot"]
    data["status"] = "failed" if item.get("err") is not None else "success"
    block_time = item.get("blockTime")
    ts = block_time * 1000 if isinstance(block_time, int) else None
    return Update(TRADE, account, data, exchange_ts=ts, key=signature)
