"""The fleet uplink: a Mosquitto bridge config from ``[uplink.bridge]``.

The appliance's own Mosquitto carries the uplink to the central side: edge publishes to it as
always (``<prefix>/<device>/...``, see ``uplink/config.py``) and the bridge forwards this
device's topics to the central broker(s) under ``<site_prefix>/<site_id>/`` (commands the
other way), with TLS and the device certificate. It is plain MQTT 3.1.1 (or 5) towards the
central side, so that can be any broker (Mosquitto, EMQX, HiveMQ, VerneMQ) without code per
broker. While the central side is away the bridge's session keeps the messages (persistent
queue, written to disk by the broker); its connection state is published, locally and
centrally, on ``<site_prefix>/<site_id>/bridge`` (``1``/``0``, the ``0`` as its last will).

``render()`` is pure (tested in seconds); ``write()`` puts the file where the appliance's
Mosquitto includes ``conf.d`` (root runs it before Mosquitto starts: ``edge uplink
bridge-config``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import BridgeConfig, UplinkConfig

CONNECTION = "edge-uplink"

# (topic below the device's base, direction): state and events out, commands in
OUT_TOPICS = ("availability", "sensor/#", "relay/+", "event", "cmd/reply")
IN_TOPICS = ("cmd", "relay/+/set", "relay/+/pulse")


@dataclass(frozen=True)
class BridgeTopics:
    local: str  # e.g. edge/edge-1a2b3c4d/
    remote: str  # e.g. site/1A2B3C4D/
    state: str  # the bridge's connection state (1/0)


def topics_for(uplink: UplinkConfig, serial: str) -> BridgeTopics:
    b = uplink.bridge
    assert b is not None
    device = uplink.device_id or f"edge-{serial.lower()}"
    site = b.site_id or serial
    remote = f"{b.site_prefix}/{site}/"
    return BridgeTopics(local=f"{uplink.prefix}/{device}/", remote=remote, state=f"{remote}bridge")


def _quote_check(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\x00") or value != value.strip() or not value:
        raise ValueError(f"{what}: {value!r} cannot go into a Mosquitto config line")
    return value


def render(uplink: UplinkConfig, serial: str) -> str:
    """The bridge section of the appliance's Mosquitto config."""
    b: BridgeConfig | None = uplink.bridge
    if b is None or not b.enabled:
        return "# edge: no [uplink.bridge] in the config: no fleet bridge\n"
    t = topics_for(uplink, serial)
    client = f"edge-{(b.site_id or serial).lower()}"
    lines = [
        "# Written by edge from [uplink.bridge] of its config (`edge uplink bridge-config`): do not edit,",
        "# change the config instead. See image-build/README.md, \"Fleet uplink\".",
        "",
        "# the bridge's queue survives a broker restart: written at every clean stop and this often",
        f"autosave_interval {b.autosave_s}",
        f"max_queued_messages {b.queue_max_messages}",
        "",
        f"connection {CONNECTION}",
        "address " + " ".join(_quote_check(a, "address") for a in b.addresses),
        f"round_robin {'true' if b.round_robin else 'false'}",
        "start_type automatic",
        f"restart_timeout {b.restart_min_s} {max(b.restart_min_s, b.restart_max_s)}",
        f"keepalive_interval {b.keepalive_s}",
        f"bridge_protocol_version {b.protocol}",
        f"try_private {'true' if b.try_private else 'false'}",
        f"remote_clientid {client}",
        f"local_clientid {client}-bridge",
        # a persistent session on both sides: what waits for the central broker is kept
        "cleansession false",
        "local_cleansession false",
        "notifications true",
        f"notification_topic {t.state}",
        "bridge_attempt_unsubscribe false",
    ]
    if b.username:
        lines.append(f"remote_username {_quote_check(b.username, 'username')}")
        if b.password_file is not None:
            lines.append(f"remote_password {_quote_check(b.password_file.read_text(encoding='utf-8').strip(), 'password')}")
    if b.tls is not None:
        lines.append(f"bridge_cafile {b.tls.ca_file}")
        if b.tls.cert_file is not None and b.tls.key_file is not None:
            lines += [f"bridge_certfile {b.tls.cert_file}", f"bridge_keyfile {b.tls.key_file}"]
        lines.append(f"bridge_insecure {'true' if b.tls.insecure else 'false'}")
    lines.append("")
    lines += [f"topic {topic} out 1 {t.local} {t.remote}" for topic in OUT_TOPICS]
    lines += [f"topic {topic} in 1 {t.local} {t.remote}" for topic in IN_TOPICS]
    return "\n".join(lines) + "\n"


def write(uplink: UplinkConfig, serial: str, path: Path | None = None) -> Path:
    """Write the config (0640: it may hold the remote password) by a rename next to it."""
    target = Path(path or (uplink.bridge.output if uplink.bridge else BridgeConfig.model_fields["output"].default))
    text = render(uplink, serial)
    tmp = target.with_name(target.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(target)
    return target
