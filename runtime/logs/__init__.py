"""MCAP recording and reading of rtdrive messages (Foxglove schemas where one exists).

Public API: ``Recorder``, ``run_metadata``, ``read``, ``LogContents``, ``LogMessage``, ``stream``,
``LogStream``, ``LogCorruptError``, ``LogCodec``, ``default_topic``. See ``topics`` for the topic convention.
"""
from runtime.logs.codec import LogCodec
from runtime.logs.mcap_walk import LogCorruptError
from runtime.logs.reader import LogContents, LogMessage, LogStream, read, stream
from runtime.logs.recorder import Recorder, run_metadata
from runtime.logs.topics import default_topic

__all__ = ["LogCodec", "LogContents", "LogCorruptError", "LogMessage", "LogStream", "Recorder", "default_topic",
           "read", "run_metadata", "stream"]
