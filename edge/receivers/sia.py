"""SIA DC-09 transmitter: the transport of one receiver (a primary and maybe a backup path).

- TCP (one connection kept open, reopened after any trouble so the stream is in step again)
  or UDP (one datagram each way). One message at a time: the next one leaves only once the
  previous one was answered (many receivers read one frame per read).
- An answer is checked (CRC, sequence number, account, that an encrypted message got an
  encrypted ACK that decrypts with our key); anything else counts as no answer: the message
  is sent again later with the same sequence number (the receiver drops a duplicate).
- A NAK carries the receiver's time: the clock offset is corrected and the message sent once
  more at once. A DUH (not understood) is final: the report is dropped and logged.
- Failover: a path that failed ``failover_after`` attempts in a row counts as down; reports
  go to the other path first. A down path is probed with NULL messages (backoff, at most its
  link-test interval) and used again first as soon as it answers (return).
- Supervision (``supervise``): a NULL link test per path at its interval, restarted by every
  answered message; a path that has not answered for its interval plus ``grace_s`` is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from ..backoff import Backoff
from . import dc09
from .config import SiaReceiver
from .report import Report
from .transport import Delivery, DeliveryFailed, Link, Rejected

log = logging.getLogger("edge.receivers.sia")

DELAYED_S = 10.0  # a report older than this carries its own time (x-data H)


class _Tcp:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    async def exchange(self, frame: bytes) -> bytes:
        reused = not (self.reader is None or self.writer is None or self.writer.is_closing() or self.reader.at_eof())
        try:
            return await self._exchange(frame, fresh=not reused)
        except (ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # a receiver that closes after each answer (one connection per message): the close
            # may arrive only now; the same frame once more on a new connection
            return await self._exchange(frame, fresh=True)

    async def _exchange(self, frame: bytes, fresh: bool) -> bytes:
        if fresh:
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=dc09.MAX_FRAME)
        assert self.reader is not None and self.writer is not None
        self.writer.write(frame)
        await self.writer.drain()
        try:
            return await self.reader.readuntil(b"\r")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise dc09.BadAnswer(f"connection closed after half a frame: {exc.partial[:40]!r}") from None
            raise ConnectionResetError("the receiver closed the connection without answering") from None
        except asyncio.LimitOverrunError:
            raise dc09.BadAnswer(f"no frame end within {dc09.MAX_FRAME} bytes") from None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.transport: asyncio.DatagramTransport | None = None
        self.answers: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    @property
    def connected(self) -> bool:
        return self.transport is not None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: nothing listens
        self.answers.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    async def exchange(self, frame: bytes) -> bytes:
        if self.transport is None:
            loop = asyncio.get_running_loop()
            self.transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.host, self.port))
        while not self.answers.empty():  # a late answer to an earlier attempt
            self.answers.get_nowait()
        self.transport.sendto(frame)
        got = await self.answers.get()
        if isinstance(got, Exception):
            raise got
        return got

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None


class SiaPath(Link):
    """A link with its connection and its link-test interval."""

    conn: Any = None
    null_interval_s: float = 0.0


class SiaTransmitter:
    def __init__(self, name: str, cfg: SiaReceiver, key: bytes | None, *, site: str = "",
                 clock: Callable[[], float] = time.time, on_change: Callable[[Link], None] | None = None):
        self.name = name
        self.cfg = cfg
        self.key = key
        self.site = site
        self.clock = clock
        self.offset = 0.0  # seconds added to our clock (from the receiver's NAK)
        self.lock = asyncio.Lock()
        self.links: list[Link] = []
        for pname, host, port in cfg.paths:
            p = SiaPath(name, pname, f"{host}:{port}", cfg.failover_after, on_change=on_change)
            p.conn = (_Tcp if cfg.protocol == "tcp" else _Udp)(host, port)
            p.null_interval_s = cfg.null_interval_s if pname == "primary" else cfg.backup_null_interval_s
            self.links.append(p)

    def now(self) -> float:
        return self.clock() + self.offset

    # ---- messages ---------------------------------------------------------------------------
    def message(self, report: Report) -> dc09.Message:
        c = self.cfg
        if c.format == "ADM-CID":
            data = dc09.adm_cid_data(c.account, report.qualifier, report.cid or 0, c.area, report.zone)
        else:
            data = dc09.sia_dcs_data(c.account, report.code, report.zone, c.area)
        xdata: list[tuple[str, str]] = []
        if c.text:
            for letter, value in (("I", report.text), ("S", report.site or self.site)):
                if value := dc09.ascii_text(value):
                    xdata.append((letter, value))
        if self.now() - report.ts > DELAYED_S:  # queued a while: say when it happened
            xdata.append(("H", datetime.fromtimestamp(report.ts, timezone.utc).strftime(dc09.TIME_FORMAT)))
        if c.format == "ADM-CID":  # receivers (pysiaalarm too) read one x-data block after Contact ID data
            xdata = xdata[:1]
        return dc09.Message(c.format, dc09.seq_text(report.n), c.account, c.line, c.receiver_number, data, tuple(xdata))

    def null_message(self, n: int) -> dc09.Message:
        c = self.cfg
        return dc09.Message("NULL", dc09.seq_text(n), c.account, c.line, c.receiver_number)

    # ---- delivery -----------------------------------------------------------------------------
    def _order(self) -> list[SiaPath]:
        return sorted(self.links, key=lambda p: (p.up is False, self.links.index(p)))  # type: ignore[arg-type, return-value]

    async def deliver(self, report: Report) -> Delivery:
        """Send one report: the usable path first, then the other. Raises DeliveryFailed (try
        again later, same sequence number) or Rejected (never)."""
        msg = self.message(report)
        async with self.lock:
            errors = []
            for p in self._order():
                try:
                    return await self._send(p, msg)
                except DeliveryFailed as exc:
                    errors.append(f"{p.name}: {exc}")
            raise DeliveryFailed("; ".join(errors))

    async def probe(self, path: SiaPath, n: int) -> Delivery:
        """A NULL link test on ``path`` with sequence number ``n``."""
        async with self.lock:
            return await self._send(path, self.null_message(n))

    async def _send(self, p: SiaPath, msg: dc09.Message) -> Delivery:
        for attempt in (1, 2):
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(self.cfg.timeout_s):
                    raw = await p.conn.exchange(msg.frame(self.now(), self.key))
                answer = dc09.parse_answer(raw, self.key)
                self._check(answer, msg)
            except (TimeoutError, OSError, dc09.BadAnswer) as exc:
                p.conn.close()
                p.connected = False
                reason = self._why(exc)
                p.failed(f"{msg.id} {msg.seq}: {reason}")
                raise DeliveryFailed(reason) from None
            ms = (time.monotonic() - t0) * 1000
            p.connected = p.conn.connected
            if answer.kind in ("ACK", "RSP"):
                p.ok()
                return Delivery(f"{'*' if answer.encrypted else ''}{answer.kind} {answer.seq}", p.name, p.where, ms)
            if answer.kind == "DUH":
                p.ok()  # the link works; the receiver does not understand this message
                raise Rejected(f"{p.label} answered DUH to {msg.id} {msg.seq} {msg.data!r}: it does not understand it")
            # NAK
            if attempt == 1 and answer.time is not None:
                skew = answer.time.timestamp() - self.now()
                self.offset += skew
                log.warning("%s: NAK for %s %s; its clock is %+.0f s from ours: corrected, sending again", p.label,
                            msg.id, msg.seq, skew)
                continue
            why = f"NAK: the receiver refuses the message (account, key or format?): {answer.text}"
            p.failed(f"{msg.id} {msg.seq}: {why}")
            raise DeliveryFailed(why)
        raise AssertionError("unreachable")

    def _check(self, answer: dc09.Answer, msg: dc09.Message) -> None:
        if answer.kind == "NAK":
            return  # sequence 0000, no account: the receiver's time is what counts
        if answer.seq != msg.seq:
            raise dc09.BadAnswer(f"{answer.kind} for sequence {answer.seq}, we sent {msg.seq}")
        if answer.account is not None and answer.account.upper() != self.cfg.account:
            raise dc09.BadAnswer(f"{answer.kind} for account {answer.account}, ours is {self.cfg.account}")
        if self.key is not None and answer.kind in ("ACK", "RSP") and not answer.encrypted:
            raise dc09.BadAnswer(f"plain {answer.kind} to an encrypted message (anyone could have sent it)")

    @staticmethod
    def _why(exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return "no answer (timeout)"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, dc09.BadAnswer):
            return f"garbage answer: {exc}"
        return f"{type(exc).__name__}: {exc}"

    # ---- supervision ----------------------------------------------------------------------------
    async def supervise(self, p: SiaPath, next_seq: Callable[[], Awaitable[int]], busy: Callable[[], bool]) -> None:
        """Link tests on ``p`` until cancelled: a NULL ``null_interval_s`` after its last
        answer (at once at start), probes with backoff while it is down or not yet known, and
        ``down`` when it has not answered for the interval plus ``grace_s``."""
        interval = p.null_interval_s
        if interval <= 0:
            return
        backoff = Backoff(self.cfg.backoff_initial_s, min(interval, self.cfg.backoff_max_s))
        due = time.monotonic()
        while True:
            now = time.monotonic()
            silent = now - p.last_ok
            if p.up is not False and silent > interval + self.cfg.grace_s:
                p.down(f"no answer for {silent:.0f} s (link test every {interval:g} s, grace {self.cfg.grace_s:g} s)")
            if now >= due:
                if busy():  # reports under way: they test the link
                    due = now + 1.0
                    continue
                try:
                    await self.probe(p, await next_seq())
                    backoff.reset()
                except (DeliveryFailed, Rejected):
                    pass
                except Exception:  # noqa: BLE001 - supervision never stops
                    log.exception("%s: link test failed", p.label)
                due = time.monotonic() + (interval if p.up else backoff.next())
            elif p.up and p.last_ok + interval > due:
                due = p.last_ok + interval  # restarted by the last answered message
            wake = due if p.up is False else min(due, p.last_ok + interval + self.cfg.grace_s + 0.01)
            await asyncio.sleep(max(0.05, wake - time.monotonic()))

    async def close(self) -> None:
        for p in self.links:
            p.conn.close()  # type: ignore[attr-defined]
            p.connected = False
