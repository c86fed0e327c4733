"""Building the command line's parser imports none of the stack: `rtdrive --help` and
`rtdrive scenarios` answered in ~0.3 s and ~1 s instead of 4-5 s, when declaring the options of
sim --record, replay and view imported the recorder, replay and view modules (and with them the
stack, onnxruntime, open3d and numba)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("onnxruntime", "open3d", "numba", "cv2", "runtime.closed_loop", "runtime.record", "runtime.replay",
         "runtime.view")


def test_building_the_parser_imports_no_heavy_module():
    probe = ("import sys; from runtime.cli import build_parser; build_parser(); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_options_still_parse():
    from runtime.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["replay", "x.mcap", "--check", "--from", "1.5"])
    assert (args.log, args.check, args.from_s) == ("x.mcap", True, 1.5)
    args = parser.parse_args(["view", "x.mcap", "-o", "a.png", "--at", "2"])
    assert (str(args.out), args.at_s) == ("a.png", 2.0)
    assert parser.parse_args(["sim", "--record", "r.mcap"]).record == Path("r.mcap")
