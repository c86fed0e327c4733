"""Control: turns a Plan into ControlCommands at 100 Hz."""
from control.controller import ControllerConfig, ControllerState, control_step

__all__ = ["ControllerConfig", "ControllerState", "control_step"]
