import pytest

from core.config import ConfigError, from_mapping
from sim.scenario import ScenarioConfig, build_road, find_scenario, list_scenarios, load_scenario

BUILTINS = ["curve", "cut_in", "free_road", "lead_brake", "stopped_vehicle"]


def test_list_scenarios_has_every_builtin_with_a_description():
    listed = list_scenarios()
    assert [name for name, _ in listed] == BUILTINS
    assert all(desc for _, desc in listed)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_and_builds_its_road(name):
    cfg = load_scenario(name)
    assert cfg.name == name and 20.0 <= cfg.duration_s <= 30.0
    road = build_road(cfg.road)
    assert road.length_m == pytest.approx(cfg.road.length_m)
    assert cfg.ego.s_m + cfg.ego.speed_mps * cfg.duration_s * 1.2 < road.length_m


def test_cut_in_scenario_is_a_cut_in():
    actor = load_scenario("cut_in").actors[0]
    assert actor.kind == "cut_in" and actor.target_lane == load_scenario("cut_in").ego.lane


def write(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n' + text)
    return path


@pytest.mark.parametrize("text, key, words", [
    ("[road]\nnum_lanse = 3\n", "road.num_lanse", "unknown key"),
    ("[ego]\nspeed_mps = \"fast\"\n", "ego.speed_mps", "expected a number"),
    ("[road]\nnum_lanes = 9\n", "road.num_lanes", "out of range"),
    ("[[actors]]\nkind = \"teleport\"\n", "actors[0].kind", "not allowed"),
    ("[ego]\nlane = 4\n", "ego.lane", "not a lane"),
    ("[[actors]]\nkind = \"cut_in\"\nlane = 1\n", "target_lane", "target_lane"),
    ("[ego.vehicle]\nwheelbase_m = 0.1\n", "ego.vehicle.wheelbase_m", "out of range"),
    # Six 5 m lanes on a 10 m radius: the inner lanes would pass the bend's centre.
    ("[road]\nnum_lanes = 6\nlane_width_m = 5.0\nsegments = [{ length_m = 100.0, curvature_1pm = 0.1 }]\n",
     "segments[0].curvature_1pm", "within the road's half width of 15 m"),
    # The ego's box centre is at s 50 + 1.4: an actor centred 4 m ahead overlaps it.
    ("[ego]\nlane = 1\ns_m = 50.0\n[[actors]]\nlane = 1\ns_m = 55.4\n", "actors[0].s_m",
     "starts overlapping the ego"),
    ("[[actors]]\nlane = 2\ns_m = 200.0\n[[actors]]\nlane = 2\ns_m = 200.0\n", "actors[1].s_m",
     "starts overlapping actors[0]"),
    # A 20 m box centred 0.1 m before the end of a 200 m road reaches 9.9 m past it.
    ("[road]\nsegments = [{ length_m = 200.0 }]\n[[actors]]\nlane = 0\ns_m = 199.9\nlength_m = 20.0\n",
     "actors[0].s_m", "reaches past the road, which runs from 0 to 200 m"),
    ("[ego]\ns_m = 0.0\n", "ego.s_m", "reaches past the road"),
])
def test_errors_name_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    message = str(err.value)
    assert str(path) in message and key in message and words in message
    assert "\n" not in message


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError) as err:
        find_scenario("no_such_scenario")
    assert "no_such_scenario" in str(err.value) and "<root>" not in str(err.value)
    assert all(name in str(err.value) for name in BUILTINS)


def test_faults_are_stored_verbatim():
    cfg = from_mapping(ScenarioConfig, {"name": "x", "faults": ["lidar:dropout@5", "camera:freeze@2"]})
    assert cfg.faults == ("lidar:dropout@5", "camera:freeze@2")
