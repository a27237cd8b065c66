"""The dashboard picture: readable tiles, pages, the red alarm view, config defaults."""

from __future__ import annotations

import time
from types import SimpleNamespace as NS

import pytest
from PIL import Image

from edge import config as config_mod
from edge.bus import Alarm, ComponentHealth, SensorChanged
from edge.dashboard import words
from edge.dashboard.model import Dashboard
from edge.dashboard.render import ALARM_RED, Renderer

from .video_clients import image_diff, is_red, mean_rgb


def _sensors(n: int, kind: str = "contact"):
    return [NS(id=f"s{i}", name=f"Sensor {i}", kind=kind) for i in range(n)]


def test_defaults_are_1280x720_at_1_fps_and_sizes_come_from_config():
    cfg = config_mod.loads("")
    assert (cfg.video.width, cfg.video.height, cfg.video.fps) == (1280, 720, 1.0)
    cfg = config_mod.loads("[video]\nwidth = 1920\nheight = 1080\nfps = 2\n")
    img = Renderer(cfg.video.width, cfg.video.height).render(Dashboard("x").view())
    assert img.size == (1920, 1080)


@pytest.mark.parametrize("bad, where", [("width = 1281", "video.width"), ("width = 1366", "video.width"), ("mount = 'cam'", "video.mount"),
                                        ("encoder = 'nvenc'", "video.encoder"), ("fps = 0", "video.fps")])
def test_bad_video_config_names_the_key(bad, where):
    with pytest.raises(config_mod.ConfigError) as ei:
        config_mod.loads(f"[video]\n{bad}\n")
    assert where in str(ei.value) and ":2:" in str(ei.value)


def test_a_full_page_stays_readable_on_a_sixteenth_multiview_tile():
    """An NVR showing 16 cameras scales 1280x720 down by 4 in each direction."""
    r = Renderer(1280, 720, max_tiles_per_page=9)
    db = Dashboard("Site", _sensors(9))
    for i in range(9):
        db.apply(SensorChanged(f"s{i}", {"contact": bool(i % 2), "battery": 50, "linkquality": 100}, ("contact",)))
    r.render(db.view())
    lay = r.last_layout
    assert lay["state_px"] / 4 >= 12, lay
    assert lay["name_px"] / 4 >= 8, lay
    assert lay["detail_px"] / 4 >= 6, lay


def test_tile_shows_state_in_words_and_colour():
    assert words.describe("contact", {"contact": False}) == words.StateWords("OPEN", words.ORANGE)
    assert words.describe("contact", {"contact": True}) == words.StateWords("CLOSED", words.GREEN)
    assert words.describe("leak", {"water_leak": True}).text == "LEAK"
    assert words.describe("motion", {"occupancy": True, "tamper": True}).text == "TAMPER"
    assert words.describe("temperature", {"temperature": 21.26, "battery": 80}).text == "21.3 °C"
    assert words.describe("contact", {}).text == "no data"
    assert words.age(3725) == "1h 02m" and words.age(42) == "42s"
    assert words.signal_bars({"linkquality": 255}) == 4 and words.signal_bars({}) is None
    # the picture: an open door's tile is orange, a closed one green
    r = Renderer(640, 360)
    db = Dashboard("Site", [NS(id="d", name="Door", kind="contact")])
    db.apply(SensorChanged("d", {"contact": False}, ("contact",)))
    px = r.render(db.view()).getpixel((320, 340))
    assert px == words.ORANGE
    db.apply(SensorChanged("d", {"contact": True}, ("contact",)))
    assert r.render(db.view()).getpixel((320, 340)) == words.GREEN


def test_time_since_last_change_ignores_battery_and_signal_updates():
    db = Dashboard("Site", [NS(id="d", name="Door", kind="contact")])
    db.apply(SensorChanged("d", {"contact": True, "battery": 90}, ("contact",), ts=1000.0))
    db.apply(SensorChanged("d", {"contact": True, "battery": 89}, ("battery",), ts=2000.0))
    assert db.view().sensors[0].changed_at == 1000.0
    db.apply(SensorChanged("d", {"contact": False, "battery": 89}, ("contact",), ts=3000.0))
    assert db.view().sensors[0].changed_at == 3000.0


def test_sensors_that_do_not_fit_are_paged_every_n_seconds():
    r = Renderer(640, 360, max_tiles_per_page=4, page_seconds=5)
    db = Dashboard("Site", _sensors(10))
    assert r.pages(10) == 3
    v = db.view()
    pics = [r.render(v, now=t) for t in (100.0, 104.9, 105.0, 110.0, 115.0)]
    assert [r.page_at(10, t) for t in (100.0, 105.0, 110.0, 115.0)] == [2, 0, 1, 2]
    assert image_diff(pics[0], pics[2]) > 1  # another page, other names
    # sensors learnt from the bus (no config) get tiles too
    db2 = Dashboard("Site")
    db2.apply(SensorChanged("zigbee_0x12", {"water_leak": False}, ("water_leak",)))
    assert [s.name for s in db2.view().sensors] == ["zigbee_0x12"] and db2.view().sensors[0].kind == "leak"


def test_alarm_takes_the_full_screen_in_red_largest_first_and_clearing_restores():
    r = Renderer(1280, 720)
    db = Dashboard("Site", [NS(id="door", name="Front door", kind="contact"), NS(id="smk", name="Kitchen smoke", kind="smoke")])
    db.apply(SensorChanged("door", {"contact": True}, ("contact",)))
    normal = r.render(db.view(), now=1000)
    assert not is_red(mean_rgb(normal))
    assert db.apply(Alarm("door:open", "door", True, "intrusion", "Door forced open", since=900)) == "alarm"
    assert db.apply(Alarm("smk:smoke", "smk", True, "smoke", "Smoke detected", since=800)) == "alarm"
    v = db.view()
    assert [a.sensor_name for a in v.alarms] == ["Kitchen smoke", "Front door"]  # smoke outranks a door
    pic = r.render(v, now=1000)
    assert is_red(mean_rgb(pic))
    assert pic.getpixel((5, 700)) == ALARM_RED
    # the same alarm again changes nothing (no extra IDR)
    assert db.apply(Alarm("smk:smoke", "smk", True, "smoke", "Smoke detected", since=800)) is None
    db.apply(Alarm("door:open", "door", False, "intrusion", "Door forced open"))
    assert is_red(mean_rgb(r.render(db.view(), now=1000)))
    db.apply(Alarm("smk:smoke", "smk", False, "smoke", ""))
    assert image_diff(r.render(db.view(), now=1000), normal) < 0.5


def test_many_alarms_are_all_listed_and_long_names_fit():
    r = Renderer(1280, 720)
    db = Dashboard("A site with a very long name that would not fit the header at all, really not", _sensors(12))
    for i in range(12):
        db.apply(Alarm(f"a{i}", f"s{i}", True, "intrusion", "Opened " * 10, since=1000 + i))
    v = db.view()
    assert [a.alarm for a in v.alarms][:3] == ["a11", "a10", "a9"]  # newest first within a rank
    img = r.render(v, now=2000)
    assert img.size == (1280, 720) and is_red(mean_rgb(img))


def test_header_shows_link_health():
    r = Renderer(1280, 720)
    db = Dashboard("Site")
    ok = r.render(db.view(), now=0).crop((0, 0, 1280, 79))
    assert db.apply(ComponentHealth("mqtt", False, "broker unreachable")) == "link"
    down = r.render(db.view(), now=0).crop((0, 0, 1280, 79))
    reds = sum(1 for p in down.get_flattened_data() if p[0] > 150 and p[1] < 80)
    assert reds > 100 and image_diff(ok, down) > 0.5


def test_render_is_fast_enough_for_the_alarm_budget():
    r = Renderer(1280, 720)
    db = Dashboard("Site", _sensors(9))
    r.render(db.view())
    t0 = time.perf_counter()
    for _ in range(5):
        r.render(db.view())
    assert (time.perf_counter() - t0) / 5 < 0.15  # typically ~15 ms; generous for a loaded CI box
