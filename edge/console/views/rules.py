"""Rules: list, edit, add, enable/disable, remove, and a dry test that says what the rule
would do for a given sensor state (the engine's own condition, nothing driven)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ... import kinds
from ...interfaces import RELAYS, SENSORS
from ...rules.config import RuleConfig, condition_holds, rule_field
from .. import configedit as ce

ACTION_TYPES = ("pulse", "follow", "latch", "alarm", "report")  # report: to an alarm receiver ([receivers])
BLANK_ACTIONS = 1  # empty action rows offered for adding one
BLANK = {"type": "", "target": "", "ms": "", "kind": "", "invert": False, "code": "", "zone": ""}


def form_values(r: RuleConfig | None) -> dict[str, Any]:
    if r is None:
        return {"enabled": True, "actions": [dict(BLANK)]}
    v: dict[str, Any] = {k: ("" if getattr(r, k) is None else getattr(r, k))
                         for k in ("name", "sensor", "field", "equals", "above", "below", "door_prop_s", "door_prop_message")}
    if isinstance(r.equals, bool):
        v["equals"] = "true" if r.equals else "false"
    v["enabled"] = r.enabled
    v["actions"] = [{"type": a.type, "target": getattr(a, a.type), "ms": a.ms if a.type == "pulse" and a.ms else "",
                     "kind": a.kind, "invert": a.invert, "code": a.code or "", "zone": "" if a.zone is None else a.zone}
                    for a in r.actions]
    v["actions"] += [dict(BLANK) for _ in range(BLANK_ACTIONS)]
    return v


def posted_values(form: Any) -> dict[str, Any]:
    v: dict[str, Any] = {k: ce.text(form, k) for k in ("name", "sensor", "field", "equals", "above", "below",
                                                         "door_prop_s", "door_prop_message")}
    v["enabled"] = form.get("enabled") == "on"
    v["actions"] = []
    j = 0
    while f"actions.{j}.type" in form:
        v["actions"].append({"type": ce.text(form, f"actions.{j}.type"), "target": ce.text(form, f"actions.{j}.target"),
                             "ms": ce.text(form, f"actions.{j}.ms"), "kind": ce.text(form, f"actions.{j}.kind"),
                             "invert": form.get(f"actions.{j}.invert") == "on", "code": ce.text(form, f"actions.{j}.code"),
                             "zone": ce.text(form, f"actions.{j}.zone")})
        j += 1
    return v


def actions_of(form: Any) -> list[dict[str, Any]]:
    out = []
    j = 0
    while f"actions.{j}.type" in form:
        t = ce.text(form, f"actions.{j}.type")
        if t:
            if t not in ACTION_TYPES:
                raise ce.FieldError(f"actions.{j}.type", f"actions.{j}.type: one of {', '.join(ACTION_TYPES)}")
            a: dict[str, Any] = {t: ce.text(form, f"actions.{j}.target")}
            if t == "pulse":
                ms = ce.integer(form, f"actions.{j}.ms")
                if ms is not None:
                    a["ms"] = ms
            if t in ("alarm", "report") and ce.text(form, f"actions.{j}.kind"):
                a["kind"] = ce.text(form, f"actions.{j}.kind")
            if t == "report":  # the receiver's code and zone, else the kind's and the sensor's
                if ce.text(form, f"actions.{j}.code"):
                    a["code"] = ce.text(form, f"actions.{j}.code").upper()
                zone = ce.integer(form, f"actions.{j}.zone")
                if zone is not None:
                    a["zone"] = zone
            if t == "follow" and form.get(f"actions.{j}.invert") == "on":
                a["invert"] = True
            out.append(a)
        j += 1
    return out


def mutate_rule(form: Any, table: Any) -> None:
    ce.set_key(table, "name", ce.text(form, "name") or None)
    enabled = form.get("enabled") == "on"
    ce.set_key(table, "enabled", None if enabled and "enabled" not in table else enabled)
    ce.set_key(table, "sensor", ce.text(form, "sensor"))
    ce.set_key(table, "field", ce.text(form, "field") or None)
    equals = ce.text(form, "equals")
    ce.set_key(table, "equals", ce.scalar(equals) if equals else None)
    ce.set_key(table, "above", ce.number(form, "above"))
    ce.set_key(table, "below", ce.number(form, "below"))
    ce.set_key(table, "door_prop_s", ce.number(form, "door_prop_s"))
    ce.set_key(table, "door_prop_message", ce.text(form, "door_prop_message") or None)
    actions = actions_of(form)
    old = [ce._plain(a) for a in table.get("actions", [])]
    if [next(iter(a)) for a in old] == [next(iter(a)) for a in actions] and "actions" in table:
        for item, new in zip(table["actions"], actions):  # same shape: each inline table edited in place
            for k in [k for k in item if k not in new]:
                del item[k]
            for k, v in new.items():
                ce.set_key(item, k, v)
    else:
        arr = ce.toml_kit().array()
        for a in actions:
            arr.append(ce.inline(a))
        if actions:
            table["actions"] = arr
        elif "actions" in table:
            del table["actions"]


def field_of(rest: tuple[Any, ...]) -> str | None:
    if not rest:
        return None
    if rest[0] == "actions" and len(rest) >= 2:
        if len(rest) == 2:
            return f"actions.{rest[1]}.type"
        key = rest[2]
        return f"actions.{rest[1]}.{'target' if key in ACTION_TYPES else key}"
    return str(rest[0])


def describe_actions(console: Any, rule: RuleConfig, active: bool) -> list[str]:
    relays = console.ctx.registry.get(RELAYS)
    known = {r.name: r for r in relays.describe()} if relays is not None else {}
    out = []
    for a in rule.actions:
        relay = a.relay
        where = ""
        if relay is not None:
            info = known.get(relay)
            where = f" (board {info.board}, channel {info.channel})" if info else " (relay not running)"
        if a.type == "pulse":
            info = known.get(relay or "")
            length = f"{a.ms} ms" if a.ms else (f"{info.pulse_ms} ms (its pulse_ms)" if info else "its pulse_ms")
            out.append(f"pulse {relay} for {length}{where}" if active else f"nothing for {relay} (a pulse runs on the way in)")
        elif a.type == "latch":
            out.append(f"switch {relay} on and leave it on{where}" if active else f"nothing for {relay} (latched)")
        elif a.type == "follow":
            on = active != a.invert
            out.append(f"switch {relay} {'on' if on else 'off'}{where}")
        elif a.type == "report":
            what = (a.code or "the kind's code") if active else "the restore"
            zone = f" zone {a.zone}" if a.zone is not None else ""
            out.append(f"report {what}{zone} to receiver {a.report} (through its queue)")
        else:
            out.append(f"raise the alarm \"{a.alarm}\"" if active else f"clear the alarm \"{a.alarm}\"")
    if rule.door_prop_s is not None:
        out.append(f"after {rule.door_prop_s:g} s still true: a door-prop alarm" if active else "cancel the door-prop timer")
    return out


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    def index_of(request: web.Request) -> int:
        try:
            i = int(request.match_info["n"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if not 0 <= i < len(console.ctx.config.rules):
            raise web.HTTPNotFound(text=f"no rule {i}\n")
        return i

    def form_page(request: web.Request, values: dict[str, Any], out: ce.Outcome | None, n: int | None,
                  status: int = 200, dry: Any = None) -> web.Response:
        relays = list(console.ctx.config.relays.channels)
        sensors = [(s.id, s.name) for s in console.ctx.config.sensors]
        return console.page(request, "rule_form.html", {
            "v": values, "n": n, "errors": out.errors if out else {}, "general": out.general if out else [],
            "relays": relays, "sensors": sensors, "types": ACTION_TYPES, "dry": dry}, status=status)

    async def index(request: web.Request) -> web.Response:
        cfg = console.ctx.config
        sensors = {s.id: s for s in cfg.sensors}
        states = console.ctx.registry.get(SENSORS)
        rows = []
        for i, r in enumerate(cfg.rules):
            s = sensors.get(r.sensor)
            state = states.state(r.sensor) if states is not None else {}
            rows.append({"n": i, "rule": r, "name": r.name or f"{r.sensor}-{i}", "sensor": s.name if s else r.sensor,
                         "when": when_words(r, s) if s else "", "active": bool(s) and condition_holds(r, s, state),
                         "actions": ", ".join(_short(a) for a in r.actions)})
        return console.page(request, "rules.html", {"rows": rows})

    async def edit_form(request: web.Request) -> web.Response:
        i = index_of(request)
        return form_page(request, form_values(console.ctx.config.rules[i]), None, i)

    async def new_form(request: web.Request) -> web.Response:
        return form_page(request, form_values(None), None, None)

    async def update(request: web.Request) -> web.Response:
        i = index_of(request)
        form = await request.post()
        out = await ce.save(console, lambda doc: mutate_rule(form, ce.array_of_tables(doc, "rules")[i]), ("rules", i),
                            field_of)
        return done(request, out, posted_values(form), i)

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        n = len(console.ctx.config.rules)

        def mutate(doc: Any) -> None:
            table = ce.toml_kit().table()
            mutate_rule(form, table)
            ce.array_of_tables(doc, "rules").append(table)

        out = await ce.save(console, mutate, ("rules", n), field_of)
        return done(request, out, posted_values(form), None)

    def done(request: web.Request, out: ce.Outcome, values: dict[str, Any], n: int | None) -> web.Response:
        if out.ok:
            console.flash(request, f"Rule saved. {out.summary()}")
            raise web.HTTPSeeOther("/rules")
        return form_page(request, values, out, n, status=422)

    async def toggle(request: web.Request) -> web.Response:
        i = index_of(request)
        rule = console.ctx.config.rules[i]
        out = await ce.save(console, lambda doc: ce.set_key(ce.array_of_tables(doc, "rules")[i], "enabled",
                                                             None if not rule.enabled and "enabled" not in
                                                             ce.array_of_tables(doc, "rules")[i] else not rule.enabled),
                            ("rules", i), field_of)
        name = rule.name or f"rule {i}"
        console.flash(request, f"{name} {'disabled' if rule.enabled else 'enabled'}. {out.summary()}" if out.ok
                      else f"{name} not changed: " + "; ".join([*out.general, *out.errors.values()]))
        raise web.HTTPSeeOther("/rules")

    async def remove(request: web.Request) -> web.Response:
        i = index_of(request)
        out = await ce.save(console, lambda doc: ce.array_of_tables(doc, "rules").__delitem__(i), ("rules", i), field_of)
        console.flash(request, f"Rule removed. {out.summary()}" if out.ok
                      else "Rule not removed: " + "; ".join([*out.general, *out.errors.values()]))
        raise web.HTTPSeeOther("/rules")

    async def dry_test(request: web.Request) -> web.Response:
        """POST the rule form (edited or not) plus ``test_value``: what would happen."""
        form = await request.post()
        values = posted_values(form)
        n = int(ce.text(form, "n")) if ce.text(form, "n").isdigit() else None
        dry: dict[str, Any] = {}
        try:
            data: dict[str, Any] = {"sensor": ce.text(form, "sensor"), "actions": actions_of(form),
                                    "enabled": form.get("enabled") == "on"}
            for key in ("name", "field", "door_prop_message"):
                if ce.text(form, key):
                    data[key] = ce.text(form, key)
            for key in ("above", "below", "door_prop_s"):
                if (x := ce.number(form, key)) is not None:
                    data[key] = x
            if ce.text(form, "equals"):
                data["equals"] = ce.scalar(ce.text(form, "equals"))
            rule = RuleConfig.model_validate(data)
            sensor = next((s for s in console.ctx.config.sensors if s.id == rule.sensor), None)
            if sensor is None:
                raise ce.FieldError("sensor", f"sensor {rule.sensor!r} is not configured")
            f = rule_field(rule, sensor)
            raw = ce.text(form, "test_value")
            states = console.ctx.registry.get(SENSORS)
            state = dict(states.state(sensor.id)) if states is not None else {}
            if raw:
                state[f] = ce.scalar(raw)
            active = rule.enabled and condition_holds(rule, sensor, state)
            dry = {"field": f, "value": state.get(f, "(no value yet)"), "active": active, "enabled": rule.enabled,
                   "steps": describe_actions(console, rule, active) if rule.enabled else ["nothing: the rule is disabled"]}
        except ValidationError as exc:
            dry = {"error": "; ".join(f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors())}
        except ce.FieldError as exc:
            dry = {"error": str(exc)}
        if request.headers.get("HX-Request"):
            return web.Response(text=console.fragment("_dry.html", {"dry": dry}), content_type="text/html")
        return form_page(request, values, None, n, dry=dry)

    router.add_get("/rules", index)
    router.add_get("/rules/new", new_form)
    router.add_post("/rules/new", create)
    router.add_post("/rules/test", dry_test)
    router.add_get("/rules/{n}/edit", edit_form)
    router.add_post("/rules/{n}/edit", update)
    router.add_post("/rules/{n}/toggle", toggle)
    router.add_post("/rules/{n}/remove", remove)


def _short(a: Any) -> str:
    if a.type == "pulse":
        return f"pulse {a.pulse} {a.ms} ms"
    if a.type == "alarm":
        return f"alarm \"{a.alarm}\""
    if a.type == "report":
        return f"report to {a.report}" + (f" {a.code}" if a.code else "") + (f" zone {a.zone}" if a.zone is not None else "")
    return f"{a.type} {a.relay}"


def when_words(r: RuleConfig, s: Any) -> str:
    f = rule_field(r, s)
    if r.above is not None or r.below is not None:
        parts = ([f"> {r.above:g}"] if r.above is not None else []) + ([f"< {r.below:g}"] if r.below is not None else [])
        return f"{f} {' and '.join(parts)}"
    want = r.equals if r.equals is not None else kinds.get(s.kind).alarm_value
    k = kinds.get(s.kind)
    if isinstance(want, bool) and k.binary and f == k.field:
        return (k.active_words if want else k.inactive_words).lower() or f"{f} = {want}"
    return f"{f} = {want}"
