"""The menu as a pure state machine: buttons and a controllable clock in, screen and actions out."""

from __future__ import annotations

from hw.buttons import ButtonEvent
from edge.setup import menu as m
from edge.setup.network import NetSettings


def press(menu: m.Menu, *names: str, now: float | None = None) -> None:
    t = menu.now if now is None else now
    for n in names:
        menu.button(ButtonEvent(n, "press"), t)
        menu.button(ButtonEvent(n, "release"), t)


def screen(menu: m.Menu) -> str:
    return "\n".join(menu.render())


def data(**kw) -> m.MenuData:
    d = m.MenuData(user="admin", password="abcd-efgh-jkmn", serial="1234ABCD", acknowledged=True,
                   ip="10.0.0.7", version="0.1.0", relays=["gate", "siren"])
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def test_home_cycles_ip_rtsp_alarms_links():
    d = data(rtsp_url="rtsp://10.0.0.7:8554/stream")
    menu = m.Menu(d, 16, 2, home_cycle_s=4, now=0)
    assert screen(menu) == "IP address      \n10.0.0.7        "
    menu.tick(4.0)
    assert menu.render()[0].startswith("RTSP")
    assert menu.render(4.0)[1] == "rtsp://10.0.0.7:"  # long: scrolls
    assert menu.render(4.0 + 16 * m.SCROLL_STEP_S)[1].endswith("/stream")
    menu.tick(8.0)
    assert "none active" in screen(menu)
    d.link_problems = ["uplink down"]
    menu.tick(12.0)
    assert screen(menu) == "Links           \nuplink down     "


def test_first_boot_until_select_then_acknowledge_action():
    d = data(acknowledged=False)
    menu = m.Menu(d, 16, 2, now=0)
    assert menu.render(0)[1].strip() == "abcd-efgh-jkmn"
    assert menu.render(3.5)[1].strip() == "abcd-efgh-jkmn"  # the hint alternates, the password stays
    press(menu, "up", "down", "back")
    assert menu.take_actions() == []
    press(menu, "select")
    assert menu.take_actions() == [m.AcknowledgeCredentials()]


def test_relays_select_pulses_the_chosen_channel():
    menu = m.Menu(data(), 16, 2, now=0)
    press(menu, "select")  # main menu
    press(menu, "down", "down")
    assert "> Relays" in screen(menu)
    press(menu, "select")
    assert screen(menu) == "Relay 1/2 gate  \n?   SEL=pulse   "
    press(menu, "down")
    assert "siren" in screen(menu)
    press(menu, "select")
    [action] = menu.take_actions()
    assert action == m.Pulse("siren")
    assert "Pulse siren" in screen(menu)  # busy until the component reports back
    menu.done(action, "siren", "pulsed OK 24ms")
    assert "pulsed OK 24ms" in screen(menu)
    press(menu, "back")
    assert "siren" in screen(menu)


def test_alarm_interrupts_any_screen_and_select_acknowledges():
    d = data()
    menu = m.Menu(d, 16, 2, now=0)
    press(menu, "select", "down")
    assert "> Network" in screen(menu)
    view = m.AlarmView("door:open", "Front door", "contact", "Door open", 0.0)
    d.alarms[view.alarm] = view
    menu.alarm(view, True)
    assert screen(menu) == "ALARM Front door\nDoor open       "
    press(menu, "down")  # any button dismisses; only SELECT acknowledges
    assert menu.take_actions() == []
    assert "> Network" in screen(menu)
    menu.alarm(view, False)
    del d.alarms[view.alarm]
    menu.alarm(view, True)
    d.alarms[view.alarm] = view
    press(menu, "select")
    assert menu.take_actions() == [m.AckAlarm("door:open")]
    assert "> Network" in screen(menu)


def test_factory_reset_needs_ten_seconds_and_a_fresh_select():
    menu = m.Menu(data(), 16, 2, now=0)
    press(menu, "select")
    for _ in range(5):
        press(menu, "down")
    assert "> System" in screen(menu)
    press(menu, "select", "down", "down", "down")
    assert screen(menu) == "Factory reset   \nhold SEL 10s    "
    menu.button(ButtonEvent("select", "press"), 100.0)
    menu.tick(109.9)
    assert "keep holding 1s" in screen(menu)
    menu.button(ButtonEvent("select", "release"), 109.95)
    menu.tick(111.0)
    assert "hold SEL 10s" in screen(menu)
    menu.button(ButtonEvent("select", "press"), 200.0)
    menu.tick(210.0)
    assert screen(menu).startswith("Wipe all+reboot?")
    menu.button(ButtonEvent("select", "release"), 210.5)
    menu.button(ButtonEvent("select", "hold"), 210.6)
    assert menu.take_actions() == []
    press(menu, "select")
    assert menu.take_actions() == [m.FactoryReset()]


def test_static_address_editor_builds_the_settings():
    menu = m.Menu(data(ip="192.168.1.50"), 16, 2, now=0)
    press(menu, "select", "down", "select")
    press(menu, "down", "down", "down")
    assert screen(menu).startswith("Static address")
    press(menu, "select")
    assert screen(menu) == "IP part 1/4     \n192.168.1.50/24 "
    press(menu, "select", "select", "select")
    menu.button(ButtonEvent("up", "hold"), 0)  # +10
    press(menu, "up", "select")  # .61
    press(menu, "down", "select")  # prefix 23
    assert screen(menu).startswith("Gw part 1/4")
    assert "192.168.0.1" in screen(menu)
    press(menu, "select", "select", "up", "select", "select")  # 192.168.1.1
    assert screen(menu) == "Use 192.168.1.61\nSEL=yes BACK=no "
    press(menu, "select")
    assert menu.take_actions() == [m.ApplyNetwork(NetSettings("static", "192.168.1.61/23", "192.168.1.1", ("192.168.1.1",)))]


def test_sensor_list_shows_state_and_last_seen():
    d = data(wall=lambda: 1000.0)
    d.sensors["door"] = m.SensorView("Front door", {"contact": False, "battery": 80}, 880.0)
    d.sensors["bath"] = m.SensorView("Bathroom", {"water_leak": False, "temperature": 21.46}, 0.0)
    menu = m.Menu(d, 16, 2, now=0)
    press(menu, "select", "down", "down", "down", "select")
    assert screen(menu) == "Bathroom        \ndry 21.5C never "
    press(menu, "down")
    assert screen(menu) == "Front door      \nOPEN 2m         "


def test_menu_goes_home_after_idle_timeout():
    menu = m.Menu(data(), 16, 2, menu_timeout_s=300, now=0)
    press(menu, "select", "down")
    menu.tick(299)
    assert "> Network" in screen(menu)
    menu.tick(301)
    assert isinstance(menu.current(), m.HomeScreen)
    assert "Network" not in screen(menu)


def test_twenty_by_four_uses_the_extra_rows():
    d = data(acknowledged=False)
    menu = m.Menu(d, 20, 4, now=0)
    lines = menu.render()
    assert lines[0].startswith("User: admin") and lines[2].strip() == "abcd-efgh-jkmn"
    assert all(len(line) == 20 for line in lines)


def test_sensor_words_come_from_the_kinds_table():
    from edge.setup.text import sensor_summary

    # a kind the LCD once had no words for reads as the kinds table says, not as "co=True"
    assert sensor_summary({"co": True}) == "CO!"
    assert sensor_summary({"gas": False, "temperature": 20}) == "no gas 20.0C"
    # the LCD's shorter words; a quiet tamper/vibration takes no room; low battery shown
    assert sensor_summary({"occupancy": False, "vibration": False, "tamper": False}) == "still"
    assert sensor_summary({"contact": True, "tamper": True, "vibration": True, "battery": 9}) == \
        "closed TAMPER VIBRATION batt 9%"
    assert sensor_summary({"illuminance": 310, "linkquality": 80}) == "illuminance=310"


def test_every_action_has_a_handler():
    from edge.setup import actions, handlers

    kinds_of_action = {c for c in vars(actions).values() if isinstance(c, type) and issubclass(c, actions.Action)
                       and c is not actions.Action}
    assert kinds_of_action == set(handlers.HANDLERS)
