"""System: network settings, credential rotation, config and database backups, config
restore, the log, version, restart and reboot."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from hw.network import NetSettings

from ... import __version__
from ... import config as config_mod
from ...auth import SESSION_USER
from ...interfaces import HISTORY
from .. import configedit as ce

log = logging.getLogger("edge.console")
MAX_RESTORE_BYTES = 512 * 1024


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    ctx = console.ctx

    async def network_status() -> dict[str, Any]:
        n = ctx.config.network
        try:
            configured = NetSettings(n.mode, n.address, n.gateway, tuple(n.dns))
            backend = ctx.platform.network(n.driver, n.interface, n.connection, configured)
            async with asyncio.timeout(2):
                st = await backend.status()
            return {"ip": st.ip, "settings": st.settings.describe() if st.settings else ""}
        except Exception as exc:  # noqa: BLE001 - the page still shows the configured settings
            return {"error": f"{type(exc).__name__}: {exc}"}

    def page(request: web.Request, net: dict[str, Any], out: ce.Outcome | None = None,
             values: dict[str, Any] | None = None, status: int = 200) -> web.Response:
        n = ctx.config.network
        v = values or {"mode": n.mode, "address": n.address, "gateway": n.gateway, "dns": ", ".join(n.dns)}
        return console.page(request, "system.html", {
            "v": v, "errors": out.errors if out else {}, "general": out.general if out else [],
            "net": net, "version": __version__, "config_path": ctx.config_path,
            "uptime_s": time.time() - console.started,
            "components": console.service.components() if console.service else []}, status=status)

    async def index(request: web.Request) -> web.Response:
        return page(request, await network_status())

    async def network(request: web.Request) -> web.Response:
        form = await request.post()
        values = {k: ce.text(form, k) for k in ("mode", "address", "gateway", "dns")}

        def mutate(doc: Any) -> None:
            if "network" not in doc:
                import tomlkit

                doc["network"] = tomlkit.table()
            t = doc["network"]
            ce.set_key(t, "mode", values["mode"] or None)
            static = values["mode"] == "static"
            ce.set_key(t, "address", values["address"] if static else None)
            ce.set_key(t, "gateway", values["gateway"] if static else None)
            dns = [d.strip() for d in values["dns"].replace(";", ",").split(",") if d.strip()]
            ce.set_key(t, "dns", dns if static and dns else None)

        out = await ce.save(console, mutate, ("network",))
        if out.ok:
            console.flash(request, f"Network settings saved. {out.summary()}")
            raise web.HTTPSeeOther("/system")
        return page(request, await network_status(), out, values, status=422)

    async def rotate(request: web.Request) -> web.Response:
        creds = await asyncio.to_thread(ctx.credentials.rotate)  # every session ends with it
        log.warning("credentials rotated from the console by %s", request.get(SESSION_USER))
        resp = console.page(request, "rotated.html", {"user": creds.user, "password": creds.password})
        resp.del_cookie("edge_session", path="/")
        return resp

    async def config_file(request: web.Request) -> web.Response:
        path = ce.config_path(console)
        return web.Response(body=path.read_bytes(), headers={
            "Content-Type": "application/toml; charset=utf-8",
            "Content-Disposition": f'attachment; filename="edge-{_stamp()}.toml"'})

    async def database(request: web.Request) -> web.StreamResponse:
        history = ctx.registry.get(HISTORY)
        if history is None:
            raise web.HTTPServiceUnavailable(text="no store\n")
        with tempfile.TemporaryDirectory(prefix="edge-backup-", dir=ctx.data_dir) as d:
            dest = Path(d) / "edge.db"
            await history.backup(dest)
            resp = web.StreamResponse(headers={"Content-Type": "application/vnd.sqlite3",
                                               "Content-Disposition": f'attachment; filename="edge-{_stamp()}.db"',
                                               "Content-Length": str(dest.stat().st_size)})
            await resp.prepare(request)
            with open(dest, "rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, 256 * 1024):
                    await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def restore(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("config")
        data = getattr(upload, "file", None)
        raw = data.read(MAX_RESTORE_BYTES + 1) if data is not None else b""
        out = ce.Outcome()
        if not raw:
            out.errors["config"] = "choose a config file (.toml) to restore"
        elif len(raw) > MAX_RESTORE_BYTES:
            out.errors["config"] = f"the file is over {MAX_RESTORE_BYTES // 1024} KB: not a config"
        else:
            try:
                out = await ce.replace_whole(console, raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.errors["config"] = "not UTF-8 text: not a config file"
        if out.ok:
            console.flash(request, f"Config restored (the previous one is kept as "
                                   f"{config_mod.backup_path(ce.config_path(console)).name}). {out.summary()}")
            raise web.HTTPSeeOther("/system")
        if out.general:
            out.errors.setdefault("config", "the file was not restored:")
        return page(request, await network_status(), out, status=422)

    async def logfile(request: web.Request) -> web.Response:
        return web.Response(text=console.logs.text(), headers={
            "Content-Disposition": f'attachment; filename="edge-{_stamp()}.log"'})

    async def restart(request: web.Request) -> web.Response:
        svc = console.service
        if svc is None:
            raise web.HTTPServiceUnavailable(text="no supervisor\n")
        console.flash(request, "The service is restarting.")
        asyncio.get_running_loop().call_later(0.5, svc.restart, f"asked on the console by {request.get(SESSION_USER)}")
        raise web.HTTPSeeOther("/system")

    async def reboot(request: web.Request) -> web.Response:
        system = ctx.platform.system(ctx.data_dir, ctx.config_path)
        log.warning("reboot asked on the console by %s", request.get(SESSION_USER))
        console.flash(request, "Rebooting.")
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(system.reboot()))
        raise web.HTTPSeeOther("/system")

    router.add_get("/system", index)
    router.add_post("/system/network", network)
    router.add_post("/system/credentials", rotate)
    router.add_get("/system/config.toml", config_file)
    router.add_get("/system/edge.db", database)
    router.add_post("/system/config", restore)
    router.add_get("/system/log.txt", logfile)
    router.add_post("/system/restart", restart)
    router.add_post("/system/reboot", reboot)
