"""A scenario file's fault that starts after a shortened run ends: the run goes on, with one
warning line per such fault on stderr (it passed silently as if it had survived the fault)."""
import pytest

from runtime.cli import main
from runtime.errors import warn_late_faults
from sim.faults import late_fault_notes
from sim.scenario import _builtin_names, load_scenario

# Stage faults: they need no simulated sensors, so the runs below can use oracle perception (fast).
LATE = "planner:slow=2.0@8"  # written with "2.0": the warning names it as written, not as parsed
INSIDE = "planner:slow=2@0.02-30"  # starts inside the run, lasts past its end: no warning


def _scenario(tmp_path, faults, duration_s=20.0):
    path = tmp_path / "late.toml"
    listed = ", ".join(f'"{f}"' for f in faults)
    path.write_text(f'name = "late"\nduration_s = {duration_s}\nfaults = [{listed}]\n')
    return str(path)


def _warnings(err):
    return [line for line in err.splitlines() if "warning" in line]


def test_notes_name_each_late_fault_as_written_with_its_start_and_the_run_end():
    notes = late_fault_notes(["imu:dropout@8", "radar:delay=0.3@2-30", " lidar:freeze@5 ", "planner:hang"], 5.0)
    assert notes == ["fault imu:dropout@8 starts at 8.0 s, after the run ends at 5.0 s; it is not injected",
                     "fault lidar:freeze@5 starts at 5.0 s, as the run ends; it acts on that last instant only"]
    assert late_fault_notes(["imu:dropout@8"], 8.5) == []


def test_sim_warns_once_per_late_scenario_fault_and_runs(tmp_path, capsys):
    path = _scenario(tmp_path, [LATE, INSIDE])
    assert main(["sim", "--scenario", path, "--duration", "1", "--perception", "oracle", "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"duration_s": 1.0' in out  # the run went on, for the --duration asked
    assert _warnings(err) == [f"rtdrive sim: warning: scenario late: fault {LATE} starts at 8.0 s, after the "
                              "run ends at 1.0 s; it is not injected"]


def test_sim_gives_no_warning_for_faults_inside_the_run(tmp_path, capsys):
    path = _scenario(tmp_path, [INSIDE, "planner:slow=3@0.2"], duration_s=1.0)
    assert main(["sim", "--scenario", path, "--perception", "oracle", "--json"]) == 0
    assert _warnings(capsys.readouterr().err) == []


def test_timing_warns_through_the_same_function(tmp_path, capsys):
    path = _scenario(tmp_path, [LATE, INSIDE])
    rc = main(["timing", "--scenario", path, "--perception", "oracle", "--duration", "0.5", "--no-latency-loop"])
    assert rc in (0, 1)  # 1: a budget broken on a busy host; the run happened either way
    assert _warnings(capsys.readouterr().err) == [
        f"rtdrive timing: warning: scenario late: fault {LATE} starts at 8.0 s, after the run ends at 0.5 s; "
        "it is not injected"]


def test_eval_tracker_warns_per_scenario_before_its_runs(tmp_path, capsys):
    from runtime.eval_tracker import eval_tracker_main
    path = _scenario(tmp_path, [LATE, INSIDE])
    rc = eval_tracker_main(["--perception", "oracle", "--scenario", path, "--scenario", "free_road",
                            "--seeds", "1,2", "--duration", "0.05", "--json"])
    err = capsys.readouterr().err
    assert rc == 0
    # Once for the scenario, not once per seed; free_road has no faults.
    assert _warnings(err) == [f"rtdrive eval-tracker: warning: scenario late: fault {LATE} starts at 8.0 s, "
                              "after the run ends at 0.05 s; it is not injected"]
    assert err.index("warning") < err.index("eval-tracker: run 1/4")


@pytest.mark.parametrize("name", _builtin_names())
def test_builtin_scenarios_at_their_own_duration_give_no_warning(name, capsys):
    warn_late_faults("sim", load_scenario(name), None)
    assert capsys.readouterr().err == ""
