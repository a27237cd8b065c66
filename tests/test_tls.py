"""HTTPS with the device's own certificate: made once per device, checked from outside with
sslscan (Debian), web surfaces redirected to it, ONVIF still answered on plain HTTP."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import sys

import aiohttp
import pytest

from edge import tls

from . import onvif_soap as s
from .peers import basic_auth, digest_session, free_port


def tls_toml(http_port: int, https_port: int) -> str:
    return f'[web]\nhost = "127.0.0.1"\nport = {http_port}\ntls = true\nhttps_port = {https_port}\n'


def test_certificate_is_unique_per_first_boot_and_names_the_host(tmp_path):
    a = tls.load_or_create(tmp_path / "a")
    again = tls.load_or_create(tmp_path / "a")
    b = tls.load_or_create(tmp_path / "b")
    assert a.created and not again.created and b.created
    assert a.fingerprint == again.fingerprint != b.fingerprint
    assert (a.key_path.stat().st_mode & 0o777) == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(a.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    import socket

    assert socket.gethostname().split(".")[0] in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    # `edge credentials` shows the fingerprint an installer compares with the browser's
    out = subprocess.run([sys.executable, "-m", "edge", "credentials", "--data-dir", str(tmp_path / "a")],
                         capture_output=True, text=True, check=True).stdout
    assert f"tls fingerprint (SHA-256): {a.fingerprint}" in out


async def test_https_serves_http_redirects_and_onvif_stays_on_plain_http(service_factory, tmp_path):
    http_port, https_port = free_port(), free_port()
    async with service_factory(tls_toml(http_port, https_port)) as svc:
        cert = tls.load(svc.ctx.data_dir)
        assert cert is not None
        sslctx = tls.client_context(cert)
        https = f"https://127.0.0.1:{https_port}"
        # Basic is fine inside TLS, and offered there
        async with aiohttp.ClientSession() as http:
            async with http.get(https + "/healthz", ssl=sslctx) as r:
                assert r.status == 401
                assert any(h.startswith("Basic") for h in r.headers.getall("WWW-Authenticate"))
            async with http.get(https + "/healthz", ssl=sslctx, headers=basic_auth(svc.user, svc.password)) as r:
                assert r.status == 200
        async with digest_session(svc.user, svc.password) as dig, dig.get(https + "/metrics", ssl=sslctx) as r:
            assert r.status == 200
        # plain HTTP: redirected to the same host on the HTTPS port, before any credentials
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz?x=1", "/api/relays", "/panel"):
                async with http.get(f"http://127.0.0.1:{http_port}{path}", allow_redirects=False) as r:
                    assert r.status == 308, path
                    assert r.headers["Location"] == f"https://127.0.0.1:{https_port}{path}"
            async with http.get(f"http://localhost:{http_port}/metrics", allow_redirects=False) as r:
                assert r.headers["Location"] == f"https://localhost:{https_port}/metrics"
            # ONVIF is answered on plain HTTP (NVRs), with WS-Security as before
            env = s.envelope(s.op("GetDeviceInformation"), s.security(svc.user, svc.password))
            async with http.post(f"http://127.0.0.1:{http_port}/onvif/device_service", data=env,
                                 headers={"Content-Type": s.CT12}) as r:
                assert r.status == 200 and b"SerialNumber" in await r.read()
        # the relay CLI on the box follows: it talks HTTPS, trusting the device certificate
        cfg = svc.ctx.config_path
        res = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "relay", "list", "--config", str(cfg),
                                                       "--data-dir", str(svc.ctx.data_dir)],
                                      capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        # a client that does not trust the device certificate is refused at the handshake
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(https + "/healthz"):
                    pass


@pytest.mark.skipif(shutil.which("sslscan") is None, reason="sslscan not installed (apt, in the Makefile's APT_PKGS)")
async def test_sslscan_sees_tls12_and_13_only_and_no_weak_cipher(service_factory):
    http_port, https_port = free_port(), free_port()
    async with service_factory(tls_toml(http_port, https_port)):
        res = await asyncio.to_thread(subprocess.run, ["sslscan", "--no-colour", "--no-heartbleed", f"127.0.0.1:{https_port}"],
                                      capture_output=True, text=True, timeout=120)
    out = res.stdout
    print(out)
    assert res.returncode == 0, res.stderr
    protocols = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)", out, re.M))
    assert protocols == {"SSLv2": "disabled", "SSLv3": "disabled", "TLSv1.0": "disabled", "TLSv1.1": "disabled",
                         "TLSv1.2": "enabled", "TLSv1.3": "enabled"}, protocols
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[23])\s+(\d+) bits\s+(\S+)", out, re.M)
    assert ciphers, out
    for version, bits, name in ciphers:
        assert int(bits) >= 128, name
        assert re.search(r"GCM|CHACHA20", name), name  # AEAD only
        assert not re.search(r"RC4|DES|NULL|EXP|MD5|CBC|SHA$|anon|PSK", name), name
        if version == "TLSv1.2":
            assert name.startswith("ECDHE-"), name  # forward secrecy
    assert "Compression enabled" not in out
    assert "Insecure session renegotiation supported" not in out


def test_client_context_trusts_only_that_device(tmp_path):
    a = tls.load_or_create(tmp_path / "a")
    b = tls.load_or_create(tmp_path / "b")
    ctx = tls.client_context(a)
    assert isinstance(ctx, ssl.SSLContext)
    # b's certificate is not in a's trust store
    der_b = ssl.PEM_cert_to_DER_cert(b.cert_path.read_text())
    assert der_b not in [c for c in ctx.get_ca_certs(binary_form=True)]


async def test_console_login_over_https_with_a_secure_cookie(service_factory):
    """The browser console behind the same rules: plain HTTP redirects to HTTPS, the session
    cookie is Secure there, and its form posts (CSRF token, same origin) pass the guard."""
    from .test_console_http import csrf_of, login

    http_port, https_port = free_port(), free_port()
    async with service_factory(tls_toml(http_port, https_port)) as svc:
        cert = tls.load(svc.ctx.data_dir)
        base = f"https://127.0.0.1:{https_port}"
        connector = aiohttp.TCPConnector(ssl=tls.client_context(cert))
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"http://127.0.0.1:{http_port}/login", allow_redirects=False) as r:
                assert r.status == 308 and r.headers["Location"] == base + "/login"
            r = await login(s, base, svc.password)
            assert r.status == 303
            assert "Secure" in r.headers["Set-Cookie"]
            token = await csrf_of(s, base + "/sensors/new")
            async with s.post(base + "/sensors/new", data={"csrf": token}, headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403
