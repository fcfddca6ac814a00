"""singvc: singing voice conversion for music production.

Audio everywhere is float32 ``[channels, samples]`` with an explicit ``sample_rate`` in Hz.
"""
__version__ = "0.1.0"

from .audio import load_audio, save_audio  # noqa: E402
from .errors import (  # noqa: E402
    AudioLoadError,
    InvalidAudioError,
    InvalidReferenceError,
    ModelNotFoundError,
    OutputError,
    PlanError,
    SingvcError,
    SingvcWarning,
    UserInputError,
    WeightsUnavailableError,
)
from .converters import Converter, get_converter, register  # noqa: E402
from .cover import CoverResult, Singvc, cover  # noqa: E402
from .jobs import cover_file  # noqa: E402
from .pitch import PitchTrack, load_pitch_model, track_pitch  # noqa: E402
from .plan import RangePlan, Register, parse_range, plan_transposition  # noqa: E402
from .settings import CoverSettings  # noqa: E402

__all__ = [
    "__version__", "Singvc", "CoverSettings", "CoverResult", "cover", "cover_file", "load_audio", "save_audio",
    "Converter", "get_converter", "register", "PitchTrack", "load_pitch_model", "track_pitch",
    "RangePlan", "Register", "parse_range", "plan_transposition", "SingvcError", "SingvcWarning", "UserInputError",
    "AudioLoadError", "InvalidAudioError", "InvalidReferenceError", "ModelNotFoundError",
    "WeightsUnavailableError", "PlanError", "OutputError",
]
