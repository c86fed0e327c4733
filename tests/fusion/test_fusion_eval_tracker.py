import json

import numpy as np
import pytest

from core.messages import Tracks
from runtime.eval_tracker import _RunAccumulator, parse_seeds, summarise


def _tracks(ids, xy, cov=0.25):
    n = len(ids)
    states = np.zeros((n, 4))
    states[:, :2] = xy
    return Tracks(0, np.array(ids, np.int64), states, np.tile(np.eye(4) * cov, (n, 1, 1)),
                  np.zeros(n), np.ones((n, 3)), np.zeros(n, np.int16), np.ones(n))


def test_parse_seeds_forms_and_errors():
    assert parse_seeds("100..104") == [100, 101, 102, 103, 104]
    assert parse_seeds("3,5") == [3, 5] and parse_seeds("7") == [7]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("5..1")
    # "1,1" ran seed 1 twice and counted it twice in OVERALL; "-1" was refused naming --seed, an
    # option eval-tracker does not have.
    with pytest.raises(ValueError, match=r"^--seeds: '1,2,1' names seed 1 more than once"):
        parse_seeds("1,2,1")
    with pytest.raises(ValueError, match=r"^--seeds: -1 is out of range; allowed >= 0$"):
        parse_seeds("-1")


def test_metrics_count_switches_misses_and_ego_error():
    run = _RunAccumulator(match_m=2.0, coverage_m=100.0)
    gt_ids, gt_vel = np.array([1, 2]), np.zeros((2, 2))
    gt_xy = np.array([[10.0, 0.0], [30.0, 0.0]])
    no_nis = np.zeros(0)
    run.on_tracks(_tracks([7, 8], gt_xy + 0.5), np.zeros(2), gt_ids, gt_xy, gt_vel, np.array([2.0]))
    run.on_tracks(_tracks([7, 9], gt_xy + 0.5), np.zeros(2), gt_ids, gt_xy, gt_vel, no_nis)  # switch
    run.on_tracks(_tracks([7], gt_xy[:1]), np.zeros(2), gt_ids, gt_xy, gt_vel, no_nis)  # miss
    run.on_ego(np.array([3.0, 4.0]), np.zeros(2))
    out = summarise([run])
    assert out["id_switches"] == 1 and out["misses"] == 1 and out["objects"] == 6
    assert out["mota"] == pytest.approx(1.0 - 2 / 6, abs=1e-4)
    assert out["ego_rmse_m"] == pytest.approx(5.0)
    assert out["nis"] == pytest.approx(2.0)
    # NEES of a 0.5 m offset in x and y with variance 0.25 is 2 per matched pair (4 of 5 pairs)
    assert out["nees"] == pytest.approx((4 * 2.0 + 0.0) / 5)


def test_coverage_is_the_union_of_sensor_fields_of_view():
    from types import SimpleNamespace
    from runtime.eval_tracker import Coverage
    # The shipped rig's geometry (sim.sensors.config defaults), without importing sim here.
    sensors = {"lidar": SimpleNamespace(x_m=1.4, y_m=0.0, yaw_rad=0.0, hfov_deg=360.0, max_range_m=120.0),
               "radar": SimpleNamespace(x_m=3.7, y_m=0.0, yaw_rad=0.0, hfov_deg=90.0, max_range_m=160.0),
               "camera": SimpleNamespace(x_m=1.6, y_m=0.0, yaw_rad=0.0, hfov_deg=90.0, max_range_m=150.0)}
    rig = SimpleNamespace(enabled=tuple(sensors), sensor=sensors.__getitem__)
    cov = Coverage.of_rig(rig)
    ego = np.array([10.0, 0.0, np.pi / 2])  # heading +y in the map
    xy = np.array([[10.0, 150.0],   # 150 m ahead: radar and camera (forward), not lidar (120 m)
                   [10.0, -100.0],  # 100 m behind: lidar only (360 deg)
                   [10.0, -130.0],  # 130 m behind: nothing
                   [150.0, 0.0]])   # 140 m to the right: outside the forward cones and lidar range
    np.testing.assert_array_equal(cov.inside(ego, xy), [True, True, False, False])


def test_visibility_needs_enough_returns_recently():
    from types import SimpleNamespace
    from runtime.eval_tracker import VISIBLE_HOLD_NS, Visibility
    vis = Visibility()
    vis.on_capture("lidar", 0, SimpleNamespace(point_ids=np.array([3] * 5 + [4] * 4 + [-1] * 9)))
    vis.on_capture("radar", 0, SimpleNamespace(point_ids=np.array([5, 5, 6])))
    vis.on_capture("camera", 0, SimpleNamespace(point_ids=np.array([7] * 50)))  # not counted
    ids = np.array([3, 4, 5, 6, 7])
    np.testing.assert_array_equal(vis.mask(ids, 1), [True, False, True, False, False])
    np.testing.assert_array_equal(vis.mask(ids, VISIBLE_HOLD_NS + 1), [False] * 5)


def test_lidar_coverage_is_the_detector_grid_when_given():
    from types import SimpleNamespace
    from perception.bev import BevGridConfig
    from runtime.eval_tracker import Coverage
    sensors = {"lidar": SimpleNamespace(x_m=1.4, y_m=0.0, yaw_rad=0.0, hfov_deg=360.0, max_range_m=120.0),
               "radar": SimpleNamespace(x_m=3.7, y_m=0.0, yaw_rad=0.0, hfov_deg=90.0, max_range_m=160.0)}
    rig = SimpleNamespace(enabled=tuple(sensors), sensor=sensors.__getitem__)
    cov = Coverage.of_rig(rig, lidar_grid=BevGridConfig())  # +-52 m x +-26 m
    ego = np.array([0.0, 0.0, 0.0])
    xy = np.array([[-40.0, 10.0],   # inside the grid behind: lidar only
                   [-100.0, 0.0],   # 100 m behind: lidar returns, but outside its detector's grid
                   [100.0, 0.0],    # 100 m ahead: radar only
                   [30.0, -30.0]])  # beside the grid, outside the radar cone: nothing
    np.testing.assert_array_equal(cov.inside_by_sensor(ego, xy),
                                  [[True, False], [False, False], [False, True], [False, False]])
    assert cov.names == ("lidar", "radar")


def test_visibility_is_kept_per_sensor():
    from types import SimpleNamespace
    from runtime.eval_tracker import Visibility
    vis = Visibility()
    vis.on_capture("lidar", 0, SimpleNamespace(point_ids=np.array([3] * 5)))
    vis.on_capture("radar", 0, SimpleNamespace(point_ids=np.array([4, 4])))
    np.testing.assert_array_equal(vis.mask_by_sensor(np.array([3, 4]), 1, ("lidar", "radar")),
                                  [[True, False], [False, True]])


def test_a_track_on_an_unscored_actor_is_ignored_not_a_false_positive():
    from core.messages import Tracks
    from runtime.eval_tracker import _without_ignored
    n = 3
    states = np.array([[0.0, 0.0, 0, 0], [100.5, 0.0, 0, 0], [50.0, 9.0, 0, 0]])
    tracks = Tracks(0, np.arange(n, dtype=np.int64), states, np.tile(np.eye(4), (n, 1, 1)), np.zeros(n),
                    np.ones((n, 3)), np.zeros(n, np.int16), np.ones(n))
    scored = np.array([[0.3, 0.0]])
    ignored = np.array([[100.0, 0.0], [0.0, 0.5]])  # the second sits next to a scored actor too
    kept = _without_ignored(tracks, scored, ignored, 2.0)
    # Track 1 (on the ignored far car) goes; track 0 (also near a scored actor) and the plain
    # false alarm, track 2, stay.
    assert kept.ids.tolist() == [0, 2]


def test_a_frame_with_neither_actors_nor_tracks_is_scored_without_error():
    from core.messages import Tracks
    from runtime.eval_tracker import _RunAccumulator, summarise
    run = _RunAccumulator(match_m=2.0, coverage_m=100.0)
    no_actor = np.zeros((0, 2))
    run.on_tracks(Tracks.empty(0), np.zeros(2), np.zeros(0, np.int64), no_actor, no_actor, np.zeros(0))
    one = np.array([[10.0, 0.0]])
    tracks = Tracks(1, np.array([7]), np.array([[10.2, 0.0, 0.0, 0.0]]), np.eye(4)[None], np.zeros(1),
                    np.ones((1, 3)), np.zeros(1, np.int16), np.ones(1))
    run.on_tracks(tracks, np.zeros(2), np.array([3]), one, np.zeros((1, 2)), np.zeros(0))
    out = summarise([run])
    assert out["matches"] == 1 and out["objects"] == 1 and out["false_positives"] == 0


def test_command_defaults_to_the_full_stack_and_reports_progress_per_run(capsys):
    from runtime.eval_tracker import build_parser, eval_tracker_main
    assert build_parser().parse_args([]).perception == "onnx"
    # Two short oracle runs: stdout is the JSON object alone, stderr one progress line per run.
    rc = eval_tracker_main(["--perception", "oracle", "--scenario", "free_road", "--seeds", "1,2",
                            "--duration", "1.0", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    result = json.loads(out)
    assert result["perception"] == "oracle" and [r["seed"] for r in result["runs"]] == [1, 2]
    lines = [ln for ln in err.splitlines() if "eval-tracker: run" in ln]
    assert len(lines) == 2 and "run 1/2 free_road seed 1: mota" in lines[0] and "run 2/2" in lines[1]


def test_command_evaluates_the_classical_perception_path(capsys):
    """Every perception mode of `rtdrive sim` can be evaluated: classical is the full sensor
    stack without networks (classical lidar boxes, radar clustering)."""
    from runtime.eval_tracker import eval_tracker_main
    rc = eval_tracker_main(["--perception", "classical", "--scenario", "cut_in", "--seeds", "100",
                            "--duration", "3.0", "--json"])
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert rc == 0 and result["perception"] == "classical"
    assert result["matches"] > 0 and 0.5 < result["mota"] <= 1.0 and np.isfinite(result["ego_rmse_m"])


def _reject_nan(token):
    raise AssertionError(f"{token} in the JSON: not JSON")


def test_undefined_metrics_are_null_never_nan():
    """MOTP with no match, MOTA and IDF1 with no object, NEES/NIS with no update, the ego RMSE with
    no ego estimate: undefined is None (JSON null), never NaN (which json.dumps writes as bare NaN)."""
    no_match = _RunAccumulator(match_m=2.0, coverage_m=100.0)
    gt_xy = np.array([[10.0, 0.0]])
    no_match.on_tracks(Tracks.empty(0), np.zeros(2), np.array([1]), gt_xy, np.zeros((1, 2)), np.zeros(0))
    out = summarise([no_match])
    assert out["objects"] == 1 and out["matches"] == 0 and out["motp"] is None
    assert out["nees"] is None and out["nis"] is None and out["ego_rmse_m"] is None
    assert out["mota"] == 0.0 and out["idf1"] == 0.0
    nothing = summarise([_RunAccumulator(match_m=2.0, coverage_m=100.0)])  # a scenario without objects
    assert nothing["objects"] == 0 and nothing["mota"] is None and nothing["idf1"] is None
    for result in (out, nothing):
        json.loads(json.dumps(result), parse_constant=_reject_nan)


def test_command_prints_null_in_json_and_n_a_in_the_table(capsys):
    from runtime.eval_tracker import eval_tracker_main
    argv = ["--perception", "oracle", "--scenario", "free_road", "--seeds", "1", "--duration", "0.05"]
    assert eval_tracker_main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out, parse_constant=_reject_nan)  # was "motp": NaN
    assert result["matches"] == 0 and result["motp"] is None and result["runs"][0]["motp"] is None
    assert eval_tracker_main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    header, overall = table[0].split(), table[-1].split()
    assert overall[0] == "OVERALL" and overall[header.index("motp") - 1] == "n/a"  # OVERALL has no seed cell
    assert "nan" not in "\n".join(table).lower()


@pytest.mark.parametrize("extra, fragment", [
    (["--duration", "0"], "--duration: 0.0 is out of range"),
    (["--duration", "nan"], "--duration: nan is out of range"),
    (["--duration", "-1"], "--duration"),
    (["--seeds=-3..-1"], "--seeds: -3 is out of range"),
    (["--seeds", "1,1"], "--seeds: '1,1' names seed 1 more than once"),
    (["--scenario", "free_road", "--scenario", "nope"], "nope"),
])
def test_bad_options_and_scenarios_are_refused_before_any_run(monkeypatch, capsys, extra, fragment):
    """--duration 0 ran, --duration nan failed naming no option, and the second of two --scenario
    failed only after every run of the first: all are checked before the first run."""
    import runtime.eval_tracker as et
    runs = []
    monkeypatch.setattr(et, "evaluate_run", lambda *a, **k: runs.append(a) or pytest.fail("a run started"))
    argv = ["--perception", "oracle", *extra]
    if "--scenario" not in extra:
        argv += ["--scenario", "free_road"]
    assert et.eval_tracker_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert runs == [] and len(err) == 1 and err[0].startswith("rtdrive eval-tracker: error: ")
    assert fragment in err[0]
