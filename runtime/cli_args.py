"""The options of the subcommands whose code is heavy to import (the recorder, replay and view load
the stack, onnxruntime, open3d and numba): declared here, so that building the parser for
`rtdrive --help` or `rtdrive scenarios` imports none of it. Each command imports its own module
only when it runs.
"""
from __future__ import annotations

from pathlib import Path


def record_args(parser) -> None:
    """The ``--record PATH`` option of ``rtdrive sim``."""
    parser.add_argument("--record", type=Path, default=None, metavar="PATH",
                        help="record the run to an MCAP file (inputs, stage outputs, health, timings, "
                             "sync decisions, ground truth); replay it with `rtdrive replay PATH`")


def replay_args(parser) -> None:
    parser.add_argument("log", help="MCAP log recorded with `rtdrive sim --record` (or sensor inputs in "
                                    "rtdrive's schemas)")
    parser.add_argument("--check", action="store_true",
                        help="compare every stage output with the recorded one (bit for bit in ideal mode); "
                             "exit 1 on the first divergence")
    parser.add_argument("--from", dest="from_s", type=float, default=None, metavar="S",
                        help="check from S seconds on (the stack still replays from the start: its state at S "
                             "depends on everything before)")
    parser.add_argument("--to", dest="to_s", type=float, default=None, metavar="S", help="stop the replay at S seconds")
    parser.add_argument("--salvage", action="store_true",
                        help="on a damaged log, replay the intact messages before the damage")
    parser.add_argument("--scenario", default=None,
                        help="scenario (name or TOML) for a log without rtdrive run metadata")


def view_args(parser) -> None:
    parser.add_argument("log", help="MCAP log recorded with `rtdrive sim --record`")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="FILE", help="out.mp4, out.gif or out.png")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second of log time (default 10)")
    parser.add_argument("--at", dest="at_s", type=float, default=None, metavar="S",
                        help="time of the frame for .png, inside the log's time range (default: the middle of the run)")
    parser.add_argument("--salvage", action="store_true", help="render the intact part of a damaged log")
