"""One onnxruntime session per model: explicit providers, contract check, warm-up, IO binding.

Provider choice is explicit and verified: "cuda" demands the CUDA provider and fails if the
session does not get it; "cpu" uses the CPU provider only; "auto" asks for CUDA when onnxruntime
offers it and otherwise CPU, and records in ``provider_note`` why CUDA was not used. The provider
actually running is read back from ``session.get_providers()``, never assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import ModelContract, check_session

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # the shipped models
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_PREFERENCES = ("auto", "cuda", "cpu")


class ModelFileMissingError(FileNotFoundError):
    """The model file is absent: the message names it and the fallback options."""


class ProviderUnavailableError(RuntimeError):
    """The requested execution provider could not be used."""


class ModelLoadError(ValueError):
    """The model file exists but onnxruntime cannot load or run it (truncated, corrupt, not ONNX,
    an operator it lacks): the message names the file, the cause and the fallback options."""


# The advice every model error ends with; a command without these options (eval-detector) replaces it.
FALLBACKS = ("Train it with `rtdrive train`, point the config at another file, or run with "
             "`--perception classical` (lidar) or `--perception oracle`.")


@dataclass(frozen=True, slots=True)
class SessionOptions:
    provider: str = "auto"  # one of PROVIDER_PREFERENCES
    intra_op_threads: int = 1
    warmup_runs: int = 3
    cuda_device_id: int = 0

    def __post_init__(self) -> None:
        if self.provider not in PROVIDER_PREFERENCES:
            raise ValueError(f"provider must be one of {PROVIDER_PREFERENCES}, got {self.provider!r}")
        if self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")


def _providers_for(pref: str, device_id: int) -> tuple[list, str]:
    available = ort.get_available_providers()
    if pref == "cpu":
        return [CPU], ""
    if CUDA in available:
        return [(CUDA, {"device_id": device_id}), CPU], ""
    if pref == "cuda":
        raise ProviderUnavailableError(
            f"provider 'cuda' requested but onnxruntime offers only {available}")
    return [CPU], f"CUDA provider not offered by onnxruntime ({', '.join(available)}); running on CPU"


class OnnxModel:
    """A loaded, contract-checked, warmed-up model. ``run`` maps input arrays to output arrays."""

    def __init__(self, path: str | Path, contract: ModelContract, options: SessionOptions = SessionOptions()):
        path = Path(path)
        if not path.is_file():
            raise ModelFileMissingError(f"model file not found: {path}. {FALLBACKS}")
        self.path, self.contract, self.options = path, contract, options
        providers, note = _providers_for(options.provider, options.cuda_device_id)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if options.provider == "auto" and providers[0] != CPU:
            # Trying CUDA where its libraries are missing makes onnxruntime's C++ logger print a
            # screenful of errors; the outcome is checked below and reported in provider_note.
            ort.set_default_logger_severity(4)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...): a bad file
            raise ModelLoadError(f"cannot load model {path}: {_first_line(exc)}. {FALLBACKS}") from None
        finally:
            ort.set_default_logger_severity(2)
        active = self.session.get_providers()
        wants_cuda = providers[0] != CPU
        if wants_cuda and active[0] != CUDA:
            if options.provider == "cuda":
                raise ProviderUnavailableError(
                    f"provider 'cuda' requested for {path} but the session runs on {active}")
            note = f"CUDA provider failed to initialise for {path.name}; running on {active[0]}"
        self.provider = active[0]
        self.provider_note = note
        self.device = f"cuda:{options.cuda_device_id}" if self.provider == CUDA else "cpu"
        check_session(self.session, contract, str(path))
        self._input_names = [s.name for s in contract.inputs]
        self._output_names = [s.name for s in contract.outputs]
        self._binding = self.session.io_binding() if self.provider == CUDA else None
        self._device_inputs: dict[str, ort.OrtValue] = {}
        try:
            self._warm_up(options.warmup_runs)
        except Exception as exc:  # loads, fits the contract, but cannot run: as broken as a bad file
            raise ModelLoadError(f"model {path} fails on its first inputs: {_first_line(exc)}. {FALLBACKS}") from None

    def _warm_up(self, runs: int) -> None:
        feed = {s.name: np.zeros(tuple(max(d, 1) for d in s.shape), dtype=np.float32)
                for s in self.contract.inputs}
        for _ in range(runs):
            self.run(feed)

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._binding is None:
            return self.session.run(self._output_names, feed)
        return self._run_bound(feed)

    def _run_bound(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        # Inputs live in device buffers reused across frames (one host->device copy per frame, no
        # allocation); outputs come back to host memory, which the decoders need anyway.
        binding = self._binding
        for name in self._input_names:
            arr = np.ascontiguousarray(feed[name], dtype=np.float32)
            dev = self._device_inputs.get(name)
            if dev is None or tuple(dev.shape()) != arr.shape:
                dev = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", self.options.cuda_device_id)
                self._device_inputs[name] = dev
                binding.bind_ortvalue_input(name, dev)
            else:
                dev.update_inplace(arr)
        for name in self._output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def report(self) -> dict:
        return {"model": str(self.path), "provider": self.provider, "device": self.device,
                "intra_op_threads": self.options.intra_op_threads, "note": self.provider_note}


def _first_line(exc: Exception) -> str:
    """An onnxruntime error's first line (its messages run to several, with C++ locations)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].rstrip('.') if text else ''}"
