"""`systemd-analyze verify` for the project's unit files on a dev machine.

verify insists that every Exec*= binary exists. The appliance's own binaries (/opt/edge/...,
/usr/local/lib/edge/...) do not exist here, so verify runs in a private mount namespace in
which a tmpfs covers /opt and /usr/local/lib and stubs sit at those paths (the unit files
themselves are not altered). Without namespaces (not root, no user namespaces) it falls back
to copies whose Exec paths point at stubs, which checks everything but those paths.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

STUB_ROOTS = ("/opt", "/usr/local/lib")
_EXEC = re.compile(r"^Exec(?:Start|StartPre|StartPost|Stop|StopPost|Reload|Condition)=(.*)$", re.M)


def exec_paths(unit: Path) -> list[str]:
    out = []
    for value in _EXEC.findall(unit.read_text()):
        value = value.strip().lstrip("-@:+!")
        if value:
            out.append(shlex.split(value)[0])
    return out


def stubbed(units: list[Path]) -> list[str]:
    return sorted({p for u in units for p in exec_paths(u) if p.startswith(tuple(r + "/" for r in STUB_ROOTS))})


def verify(*units: Path) -> subprocess.CompletedProcess:
    units = [Path(u).resolve() for u in units]
    stubs = stubbed(units)
    mounts = [r for r in STUB_ROOTS if any(s.startswith(r + "/") for s in stubs)]
    script = ["set -e"]
    script += [f"mount -t tmpfs tmpfs {r}" for r in mounts]
    for s in stubs:
        q = shlex.quote(s)
        script.append(f"mkdir -p {shlex.quote(os.path.dirname(s))}; printf '#!/bin/sh\\n' > {q}; chmod +x {q}")
    script.append("exec systemd-analyze verify " + " ".join(shlex.quote(str(u)) for u in units))
    if shutil.which("unshare"):
        for prefix in (["unshare", "-m"], ["unshare", "-r", "-m"]):
            if subprocess.run(prefix + ["true"], capture_output=True).returncode == 0:
                return subprocess.run(prefix + ["sh", "-c", "; ".join(script)], capture_output=True, text=True,
                                      timeout=60)
    tmp = Path(tempfile.mkdtemp())
    try:
        copies = []
        for u in units:
            text = u.read_text()
            for i, s in enumerate(stubs):
                stub = tmp / f"stub{i}"
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
                text = text.replace(s, str(stub))
            (tmp / u.name).write_text(text)
            copies.append(str(tmp / u.name))
        return subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
