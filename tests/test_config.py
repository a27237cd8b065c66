"""Config errors a person can act on: one message naming the key path and the line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge import config as config_mod

GOOD = """\
# site settings
[site]
name = "Warehouse"   # shown on the dashboard

[web]
port = 8080
"""


def problems(text: str) -> list[str]:
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.loads(text, source="edge.toml")
    return e.value.problems


def test_good_config_loads():
    cfg = config_mod.loads(GOOD)
    assert cfg.site.name == "Warehouse"
    assert cfg.web.port == 8080
    assert cfg.store.retention_days == 30


def test_typo_is_an_error_with_key_and_line():
    (p,) = problems("[site]\nname = 'x'\n\n[web]\nprot = 8080\n")
    assert p.startswith("edge.toml:5: web.prot:")
    assert "unknown key" in p


def test_wrong_type_names_key_line_and_what_was_expected():
    (p,) = problems("[web]\nhost = '0.0.0.0'\nport = 'eighty'\n")
    assert p.startswith("edge.toml:3: web.port:")
    assert "integer" in p and "'eighty'" in p


def test_out_of_range_value():
    (p,) = problems("[store]\nretention_days = 0\n")
    assert p.startswith("edge.toml:2: store.retention_days:")
    assert "greater than or equal to 1" in p


def test_broken_toml_line():
    (p,) = problems("[site]\nname = 'a'\nlocation = \n")
    assert p.startswith("edge.toml:3: invalid TOML")


def test_key_lines_follow_arrays_of_tables():
    text = "[[a]]\nx = 1\n[[a]]\nx = 2\n[a.b]\ny = 3\n"
    lines = config_mod.key_lines(text)
    assert lines[("a", 0, "x")] == 2
    assert lines[("a", 1, "x")] == 4
    assert lines[("a", 1, "b", "y")] == 6


def test_write_value_keeps_comments(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text(GOOD)
    config_mod.write_value(p, "site.name", "Depot")
    text = p.read_text()
    assert "# site settings" in text and "# shown on the dashboard" in text
    assert config_mod.load(p).site.name == "Depot"


def test_write_value_refuses_invalid(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text(GOOD)
    with pytest.raises(config_mod.ConfigError):
        config_mod.write_value(p, "web.port", 70000)
    assert p.read_text() == GOOD


def test_check_config_cli_exit_codes(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text("[web]\nport = -1\n")
    ok = subprocess.run([sys.executable, "-m", "edge", "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    ko = subprocess.run([sys.executable, "-m", "edge", "check-config", str(bad)], capture_output=True, text=True)
    assert ko.returncode != 0
    assert f"{bad}:2: web.port:" in ko.stderr


def test_demo_config_is_valid():
    from edge.paths import DEMO_CONFIG

    config_mod.load(DEMO_CONFIG)
