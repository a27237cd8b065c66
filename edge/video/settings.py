"""The encoder settings of each stream (the main stream and the substream), what a client may
change them to, and where the changes are kept.

The base values come from ``[video]``. A change made over ONVIF (SetVideoEncoderConfiguration)
is written to ``<data dir>/video-encoders.json`` and applies on top of the base values, across
restarts. The installer's TOML is never rewritten by an NVR: it may be managed elsewhere (and in
the demo it is a file of the repository). Each kept value remembers the TOML value it replaced,
so when the installer later edits that key in the TOML, the TOML wins and the kept value is
dropped (logged). A factory reset wipes the data dir, and with it these changes.

What the device supports (``options``): the main stream at a few 16:9 sizes up to 1920x1080
(and the configured size), the substream at a few sizes no larger than the main stream; 1-30
frames a second (the substream shows every frame the main stream shows, so it follows the main
stream's rate); the bitrate and GOP ranges of the ``[video]`` keys.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("edge.video.settings")

FILE_NAME = "video-encoders.json"
MAIN, SUB = "main", "sub"
MAIN_SIZES = ((1920, 1080), (1280, 720), (960, 540), (640, 360))
SUB_SIZES = ((640, 360), (480, 270), (320, 180))
FPS_RANGE = (1, 30)
BITRATE_RANGE = (64, 50_000)
GOV_RANGE = (1, 600)
KEYS = ("width", "height", "fps", "bitrate_kbps", "gov_length")


class SettingRejected(ValueError):
    """The requested settings are outside what the device supports (the message says what is)."""

    def __init__(self, message: str, conflict: bool = False):
        super().__init__(message)
        self.conflict = conflict  # True: fine on its own, but clashes with the other stream


@dataclass(frozen=True)
class StreamSettings:
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    gov_length: int


@dataclass(frozen=True)
class StreamOptions:
    sizes: tuple[tuple[int, int], ...]
    fps: tuple[float, float]
    bitrate_kbps: tuple[int, int]
    gov_length: tuple[int, int]


def _base(cfg: Any) -> dict[str, StreamSettings]:
    main = StreamSettings(cfg.width, cfg.height, float(cfg.fps), cfg.bitrate_kbps, cfg.gov_length)
    sw, sh = cfg.substream_size
    return {MAIN: main, SUB: StreamSettings(sw, sh, float(cfg.fps), cfg.substream_bitrate_kbps, cfg.gov_length)}


class VideoSettings:
    """The current settings of both streams (base values + kept changes)."""

    def __init__(self, cfg: Any, data_dir: Path | None):
        self.cfg = cfg
        self.path = Path(data_dir) / FILE_NAME if data_dir is not None else None
        self.base = _base(cfg)
        self.current = dict(self.base)
        self._kept: dict[str, dict[str, dict[str, Any]]] = {}  # stream -> key -> {"value", "toml"}
        self._load()

    # ---- what exists ------------------------------------------------------------------
    def streams(self) -> list[str]:
        return [MAIN, SUB] if self.cfg.substream else [MAIN]

    def options(self, stream: str) -> StreamOptions:
        main = self.current[MAIN]
        if stream == MAIN:
            sizes = tuple(dict.fromkeys([(self.cfg.width, self.cfg.height), (main.width, main.height), *MAIN_SIZES]))
            fps = (float(min(FPS_RANGE[0], main.fps)), float(FPS_RANGE[1]))
        else:
            sub = self.current[SUB]
            half = self.cfg.substream_size
            sizes = tuple(s for s in dict.fromkeys([half, (sub.width, sub.height), *SUB_SIZES])
                          if s[0] <= main.width and s[1] <= main.height)
            fps = (main.fps, main.fps)
        return StreamOptions(sizes, fps, BITRATE_RANGE, GOV_RANGE)

    # ---- changes ------------------------------------------------------------------------
    def check(self, stream: str, new: StreamSettings) -> None:
        """Raise SettingRejected when ``new`` is outside what ``options(stream)`` allows."""
        if stream not in self.streams():
            raise SettingRejected(f"no stream {stream!r}")
        opts = self.options(stream)
        main = self.current[MAIN]
        if (new.width, new.height) not in opts.sizes:
            if stream == SUB and (new.width > main.width or new.height > main.height) and \
                    (new.width, new.height) in SUB_SIZES:
                raise SettingRejected(f"the substream cannot be larger than the main stream ({main.width}x{main.height})",
                                      conflict=True)
            raise SettingRejected(f"resolution {new.width}x{new.height} is not offered (one of "
                                  f"{', '.join(f'{w}x{h}' for w, h in opts.sizes)})")
        if stream == SUB and abs(new.fps - main.fps) > 1e-6:
            raise SettingRejected(f"the substream shows every frame of the main stream: its frame rate is the main "
                                  f"stream's ({main.fps:g}); change that one", conflict=True)
        if not opts.fps[0] <= new.fps <= opts.fps[1]:
            raise SettingRejected(f"frame rate {new.fps:g} is outside {opts.fps[0]:g}-{opts.fps[1]:g}")
        if not opts.bitrate_kbps[0] <= new.bitrate_kbps <= opts.bitrate_kbps[1]:
            raise SettingRejected(f"bitrate {new.bitrate_kbps} kbit/s is outside "
                                  f"{opts.bitrate_kbps[0]}-{opts.bitrate_kbps[1]}")
        if not opts.gov_length[0] <= new.gov_length <= opts.gov_length[1]:
            raise SettingRejected(f"GOV length {new.gov_length} is outside {opts.gov_length[0]}-{opts.gov_length[1]}")
        if stream == MAIN and self.cfg.substream:
            sub = self.current[SUB]
            if sub.width > new.width or sub.height > new.height:
                raise SettingRejected(f"the substream ({sub.width}x{sub.height}) would be larger than "
                                      f"{new.width}x{new.height}; make the substream smaller first", conflict=True)

    def apply(self, stream: str, new: StreamSettings) -> dict[str, StreamSettings]:
        """Check, keep (written to the data dir at once) and return the settings of every stream."""
        self.check(stream, new)
        self.current[stream] = new
        if stream == MAIN and SUB in self.current:  # the substream follows the main stream's frame rate
            self.current[SUB] = replace(self.current[SUB], fps=new.fps)
        for s in self.current:
            kept = self._kept.setdefault(s, {})
            for key in KEYS:
                if s == SUB and key == "fps":  # follows the main stream's
                    continue
                value, base = getattr(self.current[s], key), getattr(self.base[s], key)
                if value == base:
                    kept.pop(key, None)
                else:
                    kept[key] = {"value": value, "toml": base}
        self._save()
        return dict(self.current)

    # ---- the file -------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            streams = data["streams"]
            assert isinstance(streams, dict)
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            log.error("%s is unreadable (%s): using the [video] settings", self.path, exc)
            return
        for stream, keys in streams.items():
            if stream not in self.base or not isinstance(keys, dict):
                continue
            values = asdict(self.base[stream])
            kept: dict[str, dict[str, Any]] = {}
            for key, entry in keys.items():
                if key not in KEYS or not isinstance(entry, dict) or "value" not in entry:
                    continue
                if entry.get("toml") != values[key]:
                    log.warning("[video] %s was changed in the config since an ONVIF client set it to %s: "
                                "the config's %s wins", self._toml_key(stream, key), entry["value"], values[key])
                    continue
                kept[key] = entry
            candidate = StreamSettings(**{**values, **{k: e["value"] for k, e in kept.items()}})
            self.current[stream] = candidate
            self._kept[stream] = kept
        if SUB in self.current:
            self.current[SUB] = replace(self.current[SUB], fps=self.current[MAIN].fps)
        for stream in list(self.current):
            try:
                self.check(stream, self.current[stream])
            except SettingRejected as exc:
                log.error("kept %s stream settings no longer fit (%s): back to the [video] settings", stream, exc)
                self.current = dict(self.base)
                self._kept = {}
                break
        changed = {s: sorted(k) for s, k in self._kept.items() if k}
        if changed:
            log.info("video encoder settings changed over ONVIF (kept in %s): %s", self.path, changed)

    def _toml_key(self, stream: str, key: str) -> str:
        if stream == MAIN:
            return key
        return {"width": "substream_width", "height": "substream_height",
                "bitrate_kbps": "substream_bitrate_kbps"}.get(key, key)

    def _save(self) -> None:
        if self.path is None:
            return
        body = {"version": 1, "streams": {s: k for s, k in self._kept.items() if k}}
        tmp = self.path.with_name(self.path.name + ".new")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
