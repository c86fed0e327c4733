"""`rtdrive sim`'s gates: --fail-on-collision and --fail-on-off-road turn a completed run into exit 1.

A run that left the road reported "collisions 0" and exited 0 under every gate: a CI job could not
fail on it. --fail-on-off-road fails it when any corner of the footprint left the paved road."""
import json

from runtime.cli import main

# A 10 m radius entered at 30 m/s on a 2.5 m, one-lane road: the car cannot hold the bend.
UNHOLDABLE_BEND = """name = "unholdable_bend"
duration_s = 2.0
[road]
segments = [{ length_m = 100.0, curvature_1pm = 0.1 }, { length_m = 1000.0 }]
num_lanes = 1
lane_width_m = 2.5
speed_limit_mps = 60.0
[ego]
lane = 0
s_m = 5.0
speed_mps = 30.0
[traffic]
vehicles_per_km_per_lane = 0.0
"""


def test_fail_on_off_road_fails_a_run_that_left_the_road(tmp_path, capsys):
    path = tmp_path / "bend.toml"
    path.write_text(UNHOLDABLE_BEND)
    argv = ["sim", "--scenario", str(path), "--perception", "oracle", "--json"]
    assert main(argv + ["--fail-on-collision"]) == 0  # no collision: this gate passes it
    summary = json.loads(capsys.readouterr().out)
    assert summary["collisions"] == 0 and summary["off_road_s"] > 0.5
    assert main(argv + ["--fail-on-off-road"]) == 1


def test_fail_on_off_road_passes_a_run_that_stayed_on_the_road(capsys):
    argv = ["sim", "--scenario", "free_road", "--duration", "2", "--perception", "oracle", "--json"]
    assert main(argv + ["--fail-on-off-road", "--fail-on-collision"]) == 0
    assert json.loads(capsys.readouterr().out)["off_road_s"] == 0.0
