"""Voice converters: one interface (:class:`Converter`), one registry.

Built in:

``"dsp"`` (:class:`~singvc.converters.dsp.DSPConverter`, the default)
    The pitch shift plus zero-shot timbre conversion toward a voice profile (formant warp,
    class-wise envelope correction, breathiness); no model weights.
``"pitch"`` (:class:`~singvc.converters.pitch_shift.PitchShiftConverter`)
    Formant-preserving pitch shift with WORLD, driven by the crepe track.
``"none"`` (:class:`~singvc.converters.bypass.BypassConverter`)
    A bit-exact copy of the input.
``"seedvc"`` (:class:`~singvc.converters.seedvc.converter.SeedVCConverter`)
    Seed-VC, a neural zero-shot converter (weights downloaded by the user; needs the ``neural`` extra).

A new backend subclasses :class:`Converter` in a module of this package, decorates the class
with :func:`register` and is imported below; its settings are declared in
:data:`singvc.settings.SCHEMA`. Nothing else in singvc needs to change.
"""
from .base import CONVERTERS, Converter, Reference, build, check_inputs, converter_class, get_converter, names, register, voiced_runs
from .dsp import DSPConverter
from .pitch_shift import PitchShiftConverter
from .bypass import BypassConverter  # noqa: I001 - registration order is the order of --help
from .seedvc.converter import SeedVCConverter

__all__ = ["CONVERTERS", "Converter", "Reference", "build", "check_inputs", "converter_class", "get_converter", "names",
           "register", "voiced_runs", "DSPConverter", "PitchShiftConverter", "BypassConverter", "SeedVCConverter"]
