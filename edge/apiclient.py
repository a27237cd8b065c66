"""A client of the RUNNING service's HTTP API for the command line (`edge sources check`, ...):
the address from the config's [web] section, the credentials from the data dir (run it as root
or the edge user on the appliance), HTTP Digest so the password never crosses the wire.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import click

from . import config as config_mod
from . import credentials as credentials_mod
from . import paths


class ServiceError(click.ClickException):
    exit_code = 1


class Api:
    def __init__(self, base: str, user: str, password: str, ssl_context: Any = None):
        self.base = base
        self.user = user
        self.password = password
        self.ssl_context = ssl_context  # HTTPS: trusts exactly the device certificate

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout_s: float = 30) -> tuple[int, Any]:
        mw = aiohttp.DigestAuthMiddleware(self.user, self.password)
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=3)
        try:
            async with aiohttp.ClientSession(middlewares=(mw,), timeout=timeout) as http:
                async with http.request(method, self.base + path, json=body,
                                        ssl=self.ssl_context if self.ssl_context is not None else True) as r:
                    if r.status == 401:
                        raise ServiceError("the service refused the credentials from the data dir "
                                           "(another data dir? rotated? see `edge credentials`)")
                    try:
                        data = await r.json(content_type=None)
                    except ValueError:
                        data = {"error": (await r.text()).strip()}
                    return r.status, data
        except aiohttp.ClientConnectorError:
            raise ServiceError(f"edge is not running: nothing answers on {self.base} "
                               "(start it with `systemctl start edge`, or check [web] in the config)") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ServiceError(f"no usable answer from the service at {self.base}: {exc or type(exc).__name__}") from None

    def get(self, path: str) -> tuple[int, Any]:
        return asyncio.run(self.call("GET", path))


def load_config(config_path: Path) -> config_mod.Config:
    try:
        return config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        raise ServiceError("cannot read the config:\n" + "\n".join(exc.problems)) from None


def service_api(config_path: Path, data_dir: Path | None) -> Api:
    cfg = load_config(config_path)
    ddir = paths.data_dir(data_dir)
    try:
        creds = credentials_mod.load(ddir)
    except PermissionError:
        raise ServiceError(f"cannot read the credentials in {ddir}: permission denied (run as root or the edge user)") from None
    if creds is None:
        raise ServiceError(f"no credentials in {ddir}: is it the running service's data dir? (--data-dir, $EDGE_DATA_DIR)")
    host = cfg.web.host
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    if cfg.web.tls:  # HTTPS (plain HTTP only redirects there)
        from . import tls

        cert = tls.load(ddir)
        if cert is None:
            raise ServiceError(f"no device certificate in {ddir}/tls yet: has the service started once?")
        return Api(f"https://{host}:{cfg.web.https_port}", creds.user, creds.password, tls.client_context(cert))
    return Api(f"http://{host}:{cfg.web.port}", creds.user, creds.password)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                             default=paths.DEFAULT_CONFIG, show_default=True, help="the running service's config")
data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="the running service's data dir (default: $EDGE_DATA_DIR, else /var/lib/edge)")
