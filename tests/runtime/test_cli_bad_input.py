"""Bad input the review found raising a traceback: each is one line on stderr and exit code 2."""
import json

import pytest

from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import Recorder
from runtime.record import EXTRA_TYPES, loop_metadata
from sim.scenario import load_scenario


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def metadata():
    """A real run's metadata (the loop is built, not run: replay fails on its metadata before any message)."""
    return loop_metadata(ClosedLoop(load_scenario("free_road"), RunOptions(duration_s=1.0)))


def write_log(path, metadata, **edits):
    meta = dict(metadata)
    for key, edit in edits.items():
        meta[key] = json.dumps(edit(json.loads(meta[key])))
    # Metadata and no messages: replay refuses the log on its metadata before reading any.
    Recorder(str(path), meta, extra_types=EXTRA_TYPES, viz=False).close()
    return path


@pytest.mark.parametrize("option, value", [("--to", "nan"), ("--to", "inf"), ("--from", "inf"),
                                           ("--from", "-inf"), ("--to", "1e300"),
                                           ("--from", "-1"), ("--to", "-0.5")])
def test_replay_non_finite_window_exit_2(tmp_path, metadata, capsys, option, value):
    log = write_log(tmp_path / "run.mcap", metadata)
    assert main(["replay", str(log), f"{option}={value}"]) == 2
    one_line_error(capsys, option)


def test_replay_of_a_directory_exit_2(tmp_path, capsys):
    assert main(["replay", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path))


@pytest.mark.parametrize("option", ["--config", "--scenario"])
def test_sim_file_not_utf8_exit_2(tmp_path, capsys, option):
    bad = tmp_path / "bad_utf8.toml"
    bad.write_bytes(b'x = "\xff"\n')
    assert main(["sim", "--perception", "oracle", "--duration", "1", option, str(bad)]) == 2
    one_line_error(capsys, str(bad), "UTF-8")


def test_sim_config_directory_exit_2(tmp_path, capsys):
    assert main(["sim", "--perception", "oracle", "--duration", "1", "--config", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path))


@pytest.mark.parametrize("argv, option", [
    (["sim", "--perception", "oracle", "--duration", "1", "--seed", "-1"], "--seed"),
    (["sim", "--perception", "oracle", "--duration", "1", "--threads", "0"], "--threads"),
    (["snapshot", "--scenario", "free_road", "--seed", "-1"], "--seed"),
    (["timing", "--perception", "oracle", "--duration", "1", "--seed", "-1"], "--seed"),
    (["timing", "--perception", "oracle", "--duration", "1", "--threads", "0"], "--threads"),
    (["sim", "--perception", "oracle", "--duration", "3601"], "--duration"),
    (["timing", "--perception", "oracle", "--duration", "0"], "--duration"),
    (["timing", "--perception", "oracle", "--duration", "3601"], "--duration"),
])
def test_seed_threads_and_duration_out_of_range_exit_2(tmp_path, capsys, argv, option):
    assert main([*argv, *(["-o", str(tmp_path / "snap")] if argv[0] == "snapshot" else [])]) == 2
    one_line_error(capsys, option)
    assert not (tmp_path / "snap").exists()


@pytest.mark.parametrize("argv", [
    ["sim", "--perception", "oracle", "--duration", "1", "--threads", "100000"],
    ["sim", "--perception", "oracle", "--duration", "1", "--threads", "65"],
    ["timing", "--perception", "oracle", "--duration", "1", "--threads", "100000"],
    ["eval-detector", "classical", "--threads", "100000"],
    ["eval-detector", "classical", "--threads", "0"],
    ["train", "lidar", "--threads", "100000"],
])
def test_threads_beyond_the_cap_exit_2_naming_the_range(capsys, argv):
    """An unbounded --threads once spawned thousands of threads: refused before anything runs."""
    assert main(argv) == 2
    one_line_error(capsys, "--threads", "allowed 1..64")


@pytest.mark.parametrize("argv, option", [
    (["bench", "control_step", "--repeat", "0"], "--repeat"),
    (["bench", "control_step", "--repeat", "-5"], "--repeat"),
    (["eval-detector", "lidar", "--frames-per-seed", "0"], "--frames-per-seed"),
    (["eval-detector", "lidar", "--frames-per-seed", "-2"], "--frames-per-seed"),
    (["train", "lidar", "--frames-per-seed", "0"], "--frames-per-seed"),
])
def test_counts_below_one_exit_2(capsys, argv, option):
    assert main(argv) == 2
    one_line_error(capsys, option, "allowed >= 1")


@pytest.mark.parametrize("command, option, kind", [
    (["timing", "--perception", "oracle", "--duration", "1", "--no-latency-loop"], "--plot", "file"),
    (["timing", "--perception", "oracle", "--duration", "1", "--no-latency-loop"], "--plot", "below_file"),
    (["timing", "--perception", "oracle", "--duration", "1", "--no-latency-loop"], "--json", "dir"),
    (["snapshot", "--scenario", "free_road"], "-o", "file"),
    (["snapshot", "--scenario", "free_road"], "-o", "below_file"),
])
def test_output_path_of_the_wrong_kind_exit_2_before_the_run(tmp_path, capsys, command, option, kind):
    """timing --plot and snapshot -o are folders, timing --json a file: the wrong kind failed with a
    traceback after the whole run. Existing outputs of the right kind are overwritten, as everywhere."""
    a_file = tmp_path / "existing"
    a_file.write_text("keep")
    path = {"file": a_file, "dir": tmp_path, "below_file": a_file / "plots"}[kind]
    assert main([*command, option, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before the run printed its report
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"rtdrive {command[0]}: error: {option} {path}: ")
    assert a_file.read_text() == "keep"


def test_timing_log_of_a_directory_exit_2(tmp_path, capsys):
    assert main(["timing", "--log", str(tmp_path)]) == 2
    one_line_error(capsys, str(tmp_path), "directory")


@pytest.mark.parametrize("fault, fragment", [
    ("lidar:dropout@30", "starts at 30 s, not before the run ends at 1 s"),
    ("lidar:dropout@-3", "START -3 is negative"),
])
def test_sim_fault_that_could_never_act_exit_2(capsys, fault, fragment):
    """A window starting after the run was accepted and the run passed without its fault."""
    assert main(["sim", "--perception", "oracle", "--duration", "1", "--fault", fault]) == 2
    one_line_error(capsys, fault, fragment)


def test_record_to_unwritable_path_exit_2(tmp_path, capsys):
    target = tmp_path / "no_such_dir" / "x.mcap"
    assert main(["sim", "--perception", "oracle", "--duration", "0.2", "--record", str(target)]) == 2
    one_line_error(capsys, "--record", str(target))


@pytest.mark.parametrize("key, edit, field", [
    ("run_options_json", lambda o: {**o, "duration_s": float("nan")}, "run_options.duration_s"),
    ("run_options_json", lambda o: {**o, "duration_s": 1e300}, "run_options.duration_s"),
    ("run_options_json", lambda o: [], "run_options"),
    ("run_options_json", lambda o: {**o, "seed": "7"}, "run_options.seed"),
    ("scenario_json", lambda o: [], "scenario"),
])
def test_replay_bad_run_metadata_names_log_and_field(tmp_path, metadata, capsys, key, edit, field):
    log = write_log(tmp_path / "edited.mcap", metadata, **{key: edit})
    assert main(["replay", str(log), "--check"]) == 2
    line = one_line_error(capsys, str(log), field)
    assert f"{field}:" in line


@pytest.mark.parametrize("window, named", [
    (["--from", "0.5", "--to", "0"], "--from 0.5, --to 0.0: "),
    (["--from", "1e6"], "--from 1000000.0: "),  # said "--to None": an option the user never gave
    (["--from", "1e6", "--to", "1e5"], "--from 1000000.0, --to 100000.0: "),
])
def test_replay_window_that_ends_before_it_starts_says_so(tmp_path, metadata, capsys, window, named):
    log = write_log(tmp_path / "run.mcap", metadata)
    assert main(["replay", str(log), *window]) == 2
    line = one_line_error(capsys, f"rtdrive replay: error: {named}the window starts past the end")
    assert "None" not in line


@pytest.mark.parametrize("detector", ["lidar", "camera"])
def test_eval_detector_model_error_names_the_command_and_its_own_options(tmp_path, capsys, detector):
    """A file that is no model printed "error: cannot load model ..." without the command's prefix,
    advising --perception classical, an option eval-detector does not have."""
    not_a_model = tmp_path / "x.json"
    not_a_model.write_text('{"a": 1}')
    assert main(["eval-detector", detector, "--model", str(not_a_model), "--frames-per-seed", "1"]) == 2
    line = one_line_error(capsys, f"cannot load model {not_a_model}", "--model", "eval-detector classical")
    assert line.startswith("rtdrive eval-detector: error: ") and "--perception" not in line


def test_eval_detector_classical_write_card_is_refused_before_the_evaluation(monkeypatch, capsys):
    """It evaluated, then silently wrote nothing: the classical detector has no model to card."""
    import runtime.eval_detector as ed
    monkeypatch.setattr(ed, "evaluate_lidar", lambda *a, **k: pytest.fail("the evaluation ran"))
    assert main(["eval-detector", "classical", "--write-card"]) == 2
    one_line_error(capsys, "rtdrive eval-detector: error: --write-card: the classical detector has no model")
