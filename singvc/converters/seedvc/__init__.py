"""The Seed-VC converter (44.1 kHz, f0-conditioned DiT; weights downloaded by the user).

Modules: :mod:`.model` (DiT, length regulator, flow-matching sampler), :mod:`.campplus` (CAM++
style encoder), :mod:`.bigvgan` (vocoder), :mod:`.features` (mel, Whisper content, fbank, F0
grid), :mod:`.runtime` (the loaded stack and its stages). Those import torch; this package's
``__init__`` does not, so importing singvc stays light.
"""
