"""Sensors: every configured sensor live; add, edit, remove with the fields of its source and
adapter; "listen" shows the last messages on a topic (to pick fields for the generic adapter)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ... import kinds
from ...dashboard import words
from ...interfaces import SENSORS
from .. import configedit as ce
from ..listen import listen

STALE_S = 3 * 3600  # no reading for this long: marked stale
COLOUR_CLASS = {words.GREEN: "ok", words.ORANGE: "warn", words.RED: "bad", words.BLUE: "info", words.GREY: "none"}
ADAPTERS = ("zigbee2mqtt", "zwave", "yolink", "generic")
SOURCES = ("mqtt", "gpio", "modbus")
TABLES = ("discrete", "coil", "input", "holding")


@dataclass
class Row:
    id: str
    name: str
    kind: str
    zone: str
    where: str
    words: str
    tone: str
    battery: float | None
    signal: int | None
    seen: float | None
    stale: bool


def row(console: Any, sid: str) -> Row | None:
    cfg = next((s for s in console.ctx.config.sensors if s.id == sid), None)
    if cfg is None:
        return None
    states = console.ctx.registry.get(SENSORS)
    state = states.state(sid) if states is not None else {}
    seen = states.seen(sid) if states is not None else None
    w = words.describe(cfg.kind, state)
    where = cfg.topic or "" if cfg.source == "mqtt" else (
        f"GPIO {cfg.gpio.pin}" if cfg.gpio else (cfg.modbus.url or f"board {cfg.modbus.board}") if cfg.modbus else "")
    return Row(cfg.id, cfg.name, cfg.kind, cfg.zone, where, w.text, COLOUR_CLASS.get(w.colour, "info"),
               words.battery_level(state), words.signal_bars(state), seen,
               seen is None or time.time() - seen > STALE_S)


def form_values(s: Any | None) -> dict[str, Any]:
    """The form's fields from a configured sensor (or the blanks of a new one)."""
    if s is None:
        return {"source": "mqtt", "adapter": "zigbee2mqtt", "kind": "contact", "gpio.normally": "open",
                "gpio.debounce_ms": "50", "modbus.table": "discrete", "modbus.address": "0", "modbus.poll_ms": "200"}
    v: dict[str, Any] = {k: getattr(s, k) or "" for k in ("id", "name", "kind", "source", "topic", "adapter",
                                                         "device_id", "field", "zone", "unit")}
    if s.fields:
        v["fields"] = "\n".join(f"{name} = {_inline(f.model_dump(exclude_defaults=True))}" for name, f in s.fields.items())
    if s.gpio:
        for k in ("pin", "normally", "debounce_ms", "pull_up"):
            v[f"gpio.{k}"] = getattr(s.gpio, k)
    if s.modbus:
        for k in ("url", "board", "device_id", "table", "address", "poll_ms", "scale", "offset"):
            x = getattr(s.modbus, k)
            v[f"modbus.{k}"] = "" if x is None else x
    return v


def _inline(d: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps({"x": ce.inline(d)})[4:].strip()


def mutate_sensor(form: Any, table: Any) -> None:
    """Write the form into one ``[[sensors]]`` table."""
    source = ce.text(form, "source") or "mqtt"
    for key in ("id", "name", "kind", "zone", "unit"):
        ce.set_key(table, key, ce.text(form, key) or None)
    ce.set_key(table, "source", None if source == "mqtt" and "source" not in table else source)
    mqtt = source == "mqtt"
    adapter = ce.text(form, "adapter") if mqtt else ""
    ce.set_key(table, "topic", ce.text(form, "topic") if mqtt else None)
    ce.set_key(table, "adapter", adapter if mqtt and (adapter != "zigbee2mqtt" or "adapter" in table) else None)
    ce.set_key(table, "device_id", ce.text(form, "device_id") if adapter in ("zwave", "yolink") else None)
    fields = ce.inline_tables(form, "fields") if adapter == "generic" else {}
    if fields:
        table["fields"] = ce.inline({k: ce.inline(v) if isinstance(v, dict) else v for k, v in fields.items()})
    elif "fields" in table:
        del table["fields"]
    ce.set_key(table, "field", ce.text(form, "field") if source != "mqtt" else None)
    if source == "gpio":
        pin = ce.text(form, "gpio.pin")
        ce.set_inline(table, "gpio", {"pin": int(pin) if pin.isdigit() else pin or None,
                                      "normally": ce.text(form, "gpio.normally") or None,
                                      "debounce_ms": ce.integer(form, "gpio.debounce_ms")})
    else:
        ce.set_inline(table, "gpio", None)
    if source == "modbus":
        ce.set_inline(table, "modbus", {"url": ce.text(form, "modbus.url") or None,
                                        "board": ce.text(form, "modbus.board") or None,
                                        "device_id": ce.integer(form, "modbus.device_id"),
                                        "table": ce.text(form, "modbus.table") or None,
                                        "address": ce.integer(form, "modbus.address"),
                                        "poll_ms": ce.integer(form, "modbus.poll_ms"),
                                        "scale": ce.number(form, "modbus.scale"),
                                        "offset": ce.number(form, "modbus.offset")})
    else:
        ce.set_inline(table, "modbus", None)


def field_of(rest: tuple[Any, ...]) -> str | None:
    if not rest:
        return None
    if rest[0] == "fields":
        return "fields"
    return ".".join(str(p) for p in rest)


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    def index_of(sid: str) -> int:
        for i, s in enumerate(console.ctx.config.sensors):
            if s.id == sid:
                return i
        raise web.HTTPNotFound(text=f"no sensor {sid!r}\n")

    def form_page(request: web.Request, values: dict[str, Any], outcome: ce.Outcome | None, new: bool,
                  status: int = 200) -> web.Response:
        boards = [n for n, b in console.ctx.config.relays.boards.items() if b.type != "gpio"]
        return console.page(request, "sensor_form.html", {
            "v": values, "new": new, "errors": outcome.errors if outcome else {},
            "general": outcome.general if outcome else [], "kinds": kinds.KIND_NAMES, "adapters": ADAPTERS,
            "sources": SOURCES, "tables": TABLES, "boards": boards}, status=status)

    async def index(request: web.Request) -> web.Response:
        rows = [row(console, s.id) for s in console.ctx.config.sensors]
        return console.page(request, "sensors.html", {"rows": rows})

    async def new_form(request: web.Request) -> web.Response:
        return form_page(request, form_values(None), None, True)

    async def edit_form(request: web.Request) -> web.Response:
        i = index_of(request.match_info["sid"])
        return form_page(request, form_values(console.ctx.config.sensors[i]), None, False)

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        n = len(console.ctx.config.sensors)

        def mutate(doc: Any) -> None:
            aot = ce.array_of_tables(doc, "sensors")
            import tomlkit

            table = tomlkit.table()
            mutate_sensor(form, table)
            aot.append(table)

        out = await ce.save(console, mutate, ("sensors", n), field_of)
        return _done(request, out, dict(form), True, f"Sensor {ce.text(form, 'id')} added.")

    async def update(request: web.Request) -> web.Response:
        i = index_of(request.match_info["sid"])
        form = await request.post()
        out = await ce.save(console, lambda doc: mutate_sensor(form, ce.array_of_tables(doc, "sensors")[i]),
                            ("sensors", i), field_of)
        return _done(request, out, dict(form), False, f"Sensor {ce.text(form, 'id')} saved.")

    async def remove(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        i = index_of(sid)
        out = await ce.save(console, lambda doc: ce.array_of_tables(doc, "sensors").__delitem__(i), ("sensors", i), field_of)
        if out.ok:
            console.flash(request, f"Sensor {sid} removed. {out.summary()}")
        else:
            console.flash(request, f"Sensor {sid} not removed: " + "; ".join([*out.general, *out.errors.values()]))
        raise web.HTTPSeeOther("/sensors")

    def _done(request: web.Request, out: ce.Outcome, values: dict[str, Any], new: bool, what: str) -> web.Response:
        if out.ok:
            console.flash(request, f"{what} {out.summary()}")
            raise web.HTTPSeeOther("/sensors")
        return form_page(request, values, out, new, status=422)

    async def listen_view(request: web.Request) -> web.Response:
        topic = request.query.get("topic", "").strip()
        try:
            seconds = min(30.0, max(1.0, float(request.query.get("seconds", "5"))))
        except ValueError:
            seconds = 5.0
        result = await listen(console.ctx.config.mqtt, topic, seconds) if topic else None
        tpl = "_listen.html" if request.headers.get("HX-Request") else "listen.html"
        if tpl == "_listen.html":
            return web.Response(text=console.fragment(tpl, {"topic": topic, "result": result}), content_type="text/html")
        return console.page(request, tpl, {"topic": topic, "result": result, "seconds": seconds})

    router.add_get("/sensors", index)
    router.add_get("/sensors/new", new_form)
    router.add_post("/sensors/new", create)
    router.add_get("/sensors/listen", listen_view)
    router.add_get("/sensors/{sid}/edit", edit_form)
    router.add_post("/sensors/{sid}/edit", update)
    router.add_post("/sensors/{sid}/remove", remove)
