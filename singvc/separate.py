"""Source separation with Demucs: a mix in, vocals + instrumental (and all Demucs stems) out.

Audio is float32 ``[channels, samples]`` at any ``sample_rate`` (Hz), as arrays or as
:class:`~singvc.audio.DiskAudio` files. The model runs at its own rate (44.1 kHz for the released
models) on overlapping segments with a linear cross-fade, the same segments, weights and order as
``demucs.apply.apply_model(split=True)`` (same result), but as a stream: each stretch of output
is written as soon as no later segment can touch it, so with a scratch folder memory does not
grow with the song's length. The stems are resampled back to the input rate (as a stream too) and
trimmed to the input length. The instrumental is ``mix - vocals`` at the input rate in float32,
so ``vocals + instrumental`` reproduces the mix to float32 rounding (the null test).

Channels: input with as many channels as the model (2) is separated as is. Mono input is copied
to both model channels and the stems are averaged back to mono. Input with more than 2 channels
(5.1 stems, multitrack) is separated one channel at a time, each as its own mono track.

Weights: :func:`load_separator_model` loads a model by name from a local folder (``repo``, as
``demucs --repo``), from the torch hub cache or the HuggingFace cache, or downloads it. With no
cached weights and no network it raises :class:`WeightsUnavailableError` within ``timeout``
seconds, with a one-line hint naming the checkpoint files and where to put them. The table of
released models, the folders, the checksums and the network probe live in :mod:`singvc.weights`.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import weights
from .audio import DiskAudio, as_audio, blocks, check_finite, fit_length, new_like, resample, resample_into
from .doctor import require_stack
from .errors import InvalidAudioError, ModelNotFoundError, OutputError, UserInputError, WeightsUnavailableError
from .run import write_bytes
from .weights import HF_HOST, checkpoint_urls, demucs_tables, file_name, hub_checkpoint_dir, weights_hint

if TYPE_CHECKING:  # torch is imported where a separator is built or runs (importing singvc stays fast)
    import torch

DEFAULT_MODEL = "htdemucs"
#: attribute set on loaded models so results can name the model they came from
NAME_ATTR = "singvc_model_name"


@dataclass
class Separation:
    """Result of :func:`separate`.

    Attributes:
        vocals, instrumental: float32 ``[channels, samples]`` (arrays, or DiskAudio files when
            separated with a scratch folder), the input's shape and rate;
            ``vocals + instrumental == mix`` to float32 rounding.
        stems: every Demucs source (``drums``, ``bass``, ``other``, ``vocals``, ...), each float32
            ``[channels, samples]`` at the input rate. ``stems["vocals"]`` is ``vocals``.
        sample_rate: Hz, the input's rate.
        model_name: the separator model's name.
    """

    vocals: np.ndarray
    instrumental: np.ndarray
    stems: dict[str, np.ndarray]
    sample_rate: int
    model_name: str


# -- loading -----------------------------------------------------------------------------------
def _finish(model: torch.nn.Module, name: str) -> torch.nn.Module:
    model.eval()
    setattr(model, NAME_ATTR, name)
    return model


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_from_repo(name: str, repo: Path) -> torch.nn.Module:
    from demucs.pretrained import REMOTE_ROOT, get_model
    from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo

    if not repo.is_dir():
        raise ModelNotFoundError(f"separator repo {repo} is not a folder")
    try:
        local = LocalRepo(repo)
        in_folder = local.has_model(name) or BagOnlyRepo(repo, local).has_model(name)
        if in_folder:
            return get_model(name, repo=repo)
        bags, _ = demucs_tables()
        # A released bag whose checkpoint files were copied into the folder without its yaml.
        if name in bags and all(local.has_model(sig) for sig in bags[name]):
            return AnyModelRepo(local, BagOnlyRepo(REMOTE_ROOT, local)).get_model(name)
    except Exception as exc:  # ModelLoadingError (checksum, duplicates), unreadable or foreign .th file
        raise ModelNotFoundError(f"cannot load separator model {name!r} from {repo}: {_reason(exc)}") from exc
    held = sorted({p.stem.rsplit("-", 1)[0] for p in repo.iterdir() if p.suffix in (".th", ".yaml")})
    bags, urls = demucs_tables()
    hint = ""
    if name in bags or name in urls:
        hint = f"; for {name} put {', '.join(file_name(u) for u in checkpoint_urls(name))} there"
    raise ModelNotFoundError(
        f"separator repo {repo} holds no model {name!r} (it holds: {', '.join(held) or 'nothing'}){hint}"
    )


def _load_hf_cached(files: list[str]) -> torch.nn.Module:
    import yaml
    from demucs.apply import BagOfModels
    from demucs.hf import load_safetensors_model

    with open(files[0]) as fh:
        bag = yaml.safe_load(fh)
    models = [load_safetensors_model(p) for p in files[1:]]
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def _load_legacy(name: str) -> torch.nn.Module:
    """Load through demucs' legacy remote repo (torch.hub cache, downloading what is missing)."""
    from demucs.pretrained import REMOTE_ROOT
    from demucs.repo import AnyModelRepo, BagOnlyRepo, RemoteRepo

    _, urls = demucs_tables()
    model_repo = RemoteRepo(dict(urls))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AnyModelRepo(model_repo, BagOnlyRepo(REMOTE_ROOT, model_repo)).get_model(name)


def load_separator_model(name: str = DEFAULT_MODEL, repo: Path | None = None, timeout: float = 5.0) -> torch.nn.Module:
    """Load a Demucs separator model (a single model or a bag of models) on the CPU, in eval mode.

    Args:
        name: a released model (``htdemucs``, ``htdemucs_ft``, ``htdemucs_6s``, ``mdx_extra``, ...;
            see :func:`singvc.weights.known_models`), a checkpoint signature, or with ``repo`` any model in it.
        repo: a local folder as for ``demucs --repo``: ``NAME.th`` / ``NAME-CHECKSUM.th`` model
            files and ``NAME.yaml`` bags. A released bag's checkpoint files alone also work.
            Nothing is downloaded.
        timeout: seconds allowed for checking that the download hosts are reachable when the
            weights are not cached.

    Raises:
        ModelNotFoundError: unknown name, or ``repo`` does not hold it or holds a broken file.
        WeightsUnavailableError: not cached and the download hosts are unreachable or the download
            fails; raised within ``timeout`` (+ about a second) when offline. The message is one
            line naming the checkpoint files and where to put them.
    """
    require_stack()  # a torchaudio that does not load with this torch: one clear error, now
    if repo is not None:
        return _finish(_load_from_repo(name, Path(repo)), name)
    if name == "demucs_unittest":  # demucs' own untrained test model: no weights needed
        from demucs.pretrained import get_model

        return _finish(get_model(name), name)
    urls = checkpoint_urls(name)  # raises ModelNotFoundError for unknown names
    cache = hub_checkpoint_dir()
    if all((cache / file_name(u)).is_file() for u in urls):
        try:
            return _finish(_load_legacy(name), name)
        except Exception as exc:  # damaged cached file (hash mismatch, truncated)
            raise WeightsUnavailableError(
                f"cached weights of separator model {name!r} in {cache} cannot be loaded ({_reason(exc)}); "
                f"delete them and {weights_hint(name)}"
            ) from exc
    hf_files = weights.demucs_hf_cached_files(name)
    if hf_files is not None:
        try:
            return _finish(_load_hf_cached(hf_files), name)
        except Exception:  # damaged HuggingFace cache: fall through to downloading
            pass
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name

    hf_url = f"https://{HF_HOST}/{DEFAULT_NAMESPACE}/{hf_repo_name(name)}/resolve/main/{name}.yaml"
    probes = {"legacy": urls[0], "hf": hf_url}
    if name not in demucs_tables()[0]:  # a bare signature exists only on the legacy host
        del probes["hf"]
    reachable = weights.reachable_hosts(probes, timeout)
    if not reachable:
        raise WeightsUnavailableError(
            f"weights of separator model {name!r} are not cached and the download hosts do not answer "
            f"(offline?): {weights_hint(name)}"
        )
    try:
        if "legacy" in reachable:
            model = _load_legacy(name)
        else:
            from demucs.hf import get_hf_model

            model = get_hf_model(name)
    except Exception as exc:  # URLError, socket timeout, HTTP errors, hash mismatch, ...
        raise WeightsUnavailableError(
            f"downloading separator model {name!r} failed ({_reason(exc)}): {weights_hint(name)}"
        ) from exc
    return _finish(model, name)


# -- test / benchmark helpers ----------------------------------------------------------------------
def build_tiny_model(
    sources: tuple[str, ...] = ("drums", "bass", "other", "vocals"),
    samplerate: int = 44100,
    seed: int = 0,
) -> torch.nn.Module:
    """A tiny randomly initialised HTDemucs (~0.1 M parameters, 1 s segment) for tests and benchmarks.

    Same architecture as ``htdemucs`` (both branches and a one-layer cross transformer) but narrow and
    shallow, so a second of audio separates in about 0.3 s on one CPU core. Its output is noise-like.
    """
    import torch  # heavy: imported when a separator is built or runs

    from demucs.htdemucs import HTDemucs

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = HTDemucs(
                sources=list(sources), audio_channels=2, samplerate=samplerate, segment=1,
                channels=8, depth=3, nfft=4096, dconv_comp=4, t_layers=1, t_heads=2,
            )
    finally:
        torch.random.set_rng_state(state)
    return _finish(model, "tiny")


def save_model_to_repo(model: torch.nn.Module, folder: str | os.PathLike, name: str) -> Path:
    """Write ``model`` into ``folder`` so ``load_separator_model(name, repo=folder)`` (and
    ``demucs -n NAME --repo folder``) loads it. Returns the file written.

    The file is ``NAME.th`` (a demucs model package: class, init arguments, float32 state). A name
    containing ``-`` is written as ``NAME-CHECKSUM.th`` instead, since demucs reads the part after
    the last ``-`` as a checksum. Older files of the same name are replaced. The model class must be
    a demucs model (its ``__init__`` arguments are recorded by ``demucs.states.capture_init``).
    """
    import torch  # heavy: imported when a separator is built or runs

    init = getattr(model, "_init_args_kwargs", None)
    if init is None:
        raise UserInputError(f"{type(model).__name__} is not a demucs model (no recorded init arguments)")
    folder = Path(folder)
    package = {
        "klass": type(model),
        "args": init[0],
        "kwargs": init[1],
        "state": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(package, buf)
    data = buf.getvalue()
    stem = f"{name}-{hashlib.sha256(data).hexdigest()[:8]}" if "-" in name else name
    target = folder / f"{stem}.th"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.th"):
            old_sig = old.stem.rsplit("-", 1)[0] if "-" in old.stem else old.stem
            if old_sig == name and old != target:
                old.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return write_bytes(target, data)


# -- separation -----------------------------------------------------------------------------------
class Separator:
    """Keeps a Demucs model loaded and separates mixes with it.

    Args:
        model: from :func:`load_separator_model` or :func:`build_tiny_model` (any demucs model or
            bag with ``samplerate``, ``sources`` and ``audio_channels``).
        device: where chunks are computed (``"cpu"``, ``"cuda"``, ...). The whole track stays on the
            CPU; only the segment being computed moves to ``device``.
        segment: seconds per chunk; ``None`` uses the model's own (7.8 s for htdemucs, its maximum).
        overlap: fraction of a chunk shared with the next, cross-faded linearly; in [0, 1).
        shifts: random time shifts averaged (the demucs "shift trick"); 0 turns it off. Makes
            results vary between runs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        segment: float | None = None,
        overlap: float = 0.25,
        shifts: int = 0,
    ) -> None:
        import torch  # heavy: imported when a separator is built or runs

        sources = list(getattr(model, "sources", []) or [])
        if "vocals" not in sources:
            raise ModelNotFoundError(
                f"separator model has no 'vocals' source (sources: {', '.join(sources) or 'none'})"
            )
        if not 0.0 <= overlap < 1.0:
            raise UserInputError(f"overlap must be in [0, 1) (got {overlap})")
        if int(shifts) != shifts or shifts < 0:
            raise UserInputError(f"shifts must be a whole number >= 0 (got {shifts})")
        if segment is not None:
            limit = _max_segment(model)
            if not 0.0 < segment <= limit:
                raise UserInputError(f"segment must be in (0, {limit:g}] seconds for this model (got {segment})")
        self.model = model
        self.device = torch.device(device)
        self.segment = segment
        self.overlap = float(overlap)
        self.shifts = int(shifts)
        self.sources = sources
        self.model_rate = int(model.samplerate)
        self.model_channels = int(getattr(model, "audio_channels", 2))
        self.model_name = str(getattr(model, NAME_ATTR, None) or type(model).__name__)

    def separate(
        self,
        mix: "np.ndarray | DiskAudio",
        sample_rate: int,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        scratch: str | os.PathLike | None = None,
    ) -> Separation:
        """Separate ``mix`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz).

        Args:
            mix: an array or a :class:`~singvc.audio.DiskAudio`.
            progress: show a tqdm bar on stderr counting seconds of input audio.
            callback: called after every computed chunk with
                ``{"stage": "separation", "seconds_done": float, "seconds_total": float}``
                (seconds of input audio). An exception raised in it aborts the separation.
            scratch: a folder; when given, every stem and the instrumental are written there as
                :class:`~singvc.audio.DiskAudio` files and memory use does not grow with the
                song's length (one chunk of model activations and a few seconds of audio).

        Returns:
            :class:`Separation` with every array the shape of ``mix``, at ``sample_rate``.

        Raises:
            InvalidAudioError: bad shape, no samples, NaN/inf samples, or a bad sample rate.
        """
        import torch  # heavy: imported when a separator runs

        mix = as_audio(mix, "mix")
        check_finite(mix, "mix")
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
            raise InvalidAudioError(f"sample_rate must be a positive whole number of Hz (got {sample_rate!r})")
        sample_rate = int(sample_rate)
        channels, length = mix.shape
        if length == 0:
            raise InvalidAudioError(f"mix holds no samples (shape {mix.shape})")
        folder = Path(scratch) if scratch is not None else None

        def buffer(name: str, shape: tuple[int, int] = (channels, length)):
            return new_like(mix, folder / f"{name}.npy" if folder is not None else None, shape)

        # One track of all channels if they match the model, else one mono track per channel.
        if channels == self.model_channels:
            tracks = [slice(None)]
        else:
            tracks = [slice(c, c + 1) for c in range(channels)]
        total = length / sample_rate
        tracker = _Progress(total, len(tracks), self.shifts, progress, callback)
        stems = {s: buffer(f"stem_{s}") for s in self.sources}
        try:
            with torch.inference_mode():
                for index, rows in enumerate(tracks):
                    tracker.track = index
                    self._separate_track(mix, rows, sample_rate, stems, tracker, buffer)
            if tracker.done < total:
                tracker.update(total)
        finally:
            tracker.close()
        vocals = stems["vocals"]
        instrumental = buffer("instrumental")
        for a, b in blocks(length):
            instrumental[:, a:b] = mix[:, a:b] - vocals[:, a:b]
        return Separation(vocals=vocals, instrumental=instrumental, stems=stems,
                          sample_rate=sample_rate, model_name=self.model_name)

    def _separate_track(self, mix, rows: slice, sample_rate: int, stems: dict, tracker: "_Progress",
                        buffer: Callable) -> None:
        """Separate channels ``rows`` of ``mix`` into ``stems[source][rows]`` (all at ``sample_rate``).

        The track is resampled to the model's rate as a stream, cut into the same overlapping
        segments as ``demucs.apply.apply_model(split=True)`` and cross-faded with the same
        triangular weights, in the same order: with ``shifts=0`` the result equals
        ``apply_model``'s. Each finished stretch of output is written out as soon as no later
        segment can touch it, so only one segment of activations and output is held at a time.
        """
        import torch  # heavy: imported when a separator is built or runs

        from demucs.apply import TensorChunk, apply_model

        c = len(range(*rows.indices(mix.shape[0])))
        n = mix.shape[1]
        if self.shifts:
            return self._separate_whole(mix, rows, sample_rate, stems, tracker)

        def read(a: int, b: int) -> np.ndarray:
            x = mix[rows, a:b]
            return np.repeat(x, self.model_channels, axis=0) if c != self.model_channels else x

        same_rate = sample_rate == self.model_rate
        if same_rate:
            x, m = None, n
        else:
            m = int(round(n * self.model_rate / sample_rate))
            x = buffer(f"model_rate_input_{tracker.track}", (self.model_channels, m))
            resample_into(read, n, sample_rate, x, self.model_rate)
        source = (lambda a, b: read(a, b)) if same_rate else (lambda a, b: x[:, a:b])

        segment = self.segment or _default_segment(self.model)
        seg_len = int(self.model_rate * segment)
        stride = int((1 - self.overlap) * seg_len)
        tracker.model_length = m
        tracker.segment_length = seg_len
        n_src = len(self.sources)
        if same_rate:
            out = None
        else:
            out = buffer(f"model_rate_stems_{tracker.track}", (n_src * c, m))
        weight = torch.cat([torch.arange(1, seg_len // 2 + 1), torch.arange(seg_len - seg_len // 2, 0, -1)])
        weight = (weight / weight.max()).to(torch.float32)
        acc = torch.zeros(n_src, self.model_channels, seg_len)
        wsum = torch.zeros(seg_len)
        for i, offset in enumerate(range(0, m, stride)):
            if i:
                acc = torch.cat([acc[..., stride:], torch.zeros(n_src, self.model_channels, stride)], dim=-1)
                wsum = torch.cat([wsum[stride:], torch.zeros(stride)])
            # the segment with as much real context on each side as the model may pad it with
            lo, hi = max(0, offset - seg_len), min(m, offset + 2 * seg_len)
            local = torch.from_numpy(np.ascontiguousarray(source(lo, hi)))[None]
            chunk = TensorChunk(local, offset - lo, seg_len)
            chunk_out = apply_model(self.model, chunk, shifts=0, split=False, overlap=self.overlap,
                                    segment=self.segment, device=self.device)[0].to("cpu", torch.float32)
            k = chunk_out.shape[-1]
            acc[..., :k] += weight[:k] * chunk_out
            wsum[:k] += weight[:k]
            tracker.demucs_event({"state": "end", "segment_offset": offset})
            stop = offset + stride if offset + stride < m else m
            done = (acc[..., : stop - offset] / wsum[: stop - offset]).numpy()  # [S, C, len]
            if c != self.model_channels:
                done = done.mean(axis=1, keepdims=True)
            if same_rate:
                for s, name in enumerate(self.sources):
                    stems[name][rows, offset:stop] = done[s]
            else:
                out[:, offset:stop] = done.reshape(n_src * c, -1)
        if not same_rate:
            for s, name in enumerate(self.sources):
                target = stems[name]
                resample_into(lambda a, b, s=s: out[s * c:(s + 1) * c, a:b], m, self.model_rate,
                              _RowsView(target, rows), sample_rate)


    def _separate_whole(self, mix, rows: slice, sample_rate: int, stems: dict, tracker: "_Progress") -> None:
        """The random-shift trick (``shifts > 0``) shifts the whole track, so it runs through
        ``apply_model(split=True)`` on the whole track in memory."""
        import torch  # heavy: imported when a separator is built or runs

        from demucs.apply import apply_model

        track = np.asarray(mix[rows, :])
        c, n = track.shape
        x = resample(track, sample_rate, self.model_rate)
        if c != self.model_channels:
            x = np.repeat(x, self.model_channels, axis=0)
        tracker.model_length = x.shape[-1]
        tracker.segment_length = int(self.model_rate * (self.segment or _default_segment(self.model)))
        out = apply_model(self.model, torch.from_numpy(np.ascontiguousarray(x))[None], shifts=self.shifts,
                          split=True, overlap=self.overlap, segment=self.segment, device=self.device,
                          progress=False, callback=tracker.demucs_event)[0].to("cpu", torch.float32).numpy()
        if c != self.model_channels:
            out = out.mean(axis=1, keepdims=True)
        back = fit_length(resample(out.reshape(-1, x.shape[-1]), self.model_rate, sample_rate), n)
        for s, name in enumerate(self.sources):
            stems[name][rows, 0:n] = back[s * c:(s + 1) * c]


class _RowsView:
    """``target[rows]`` as a writable ``[channels, samples]`` buffer (arrays and DiskAudio alike)."""

    def __init__(self, target, rows: slice) -> None:
        self.target, self.rows = target, rows
        self.shape = (len(range(*rows.indices(target.shape[0]))), target.shape[1])

    def __setitem__(self, key, value) -> None:
        self.target[self.rows, key[1]] = value


def _max_segment(model: torch.nn.Module) -> float:
    """Longest chunk (s) the model accepts: an HTDemucs cannot exceed its training segment."""
    from demucs.htdemucs import HTDemucs

    if hasattr(model, "max_allowed_segment"):  # a bag of models
        return float(model.max_allowed_segment)
    return float(model.segment) if isinstance(model, HTDemucs) else float("inf")


def _default_segment(model: torch.nn.Module) -> float:
    """The chunk length (s) demucs uses when none is given: the (first) model's ``segment``."""
    first = model.models[0] if hasattr(model, "models") else model
    return float(getattr(first, "segment", 8.0))


class _Progress:
    """Turns demucs' per-chunk callback events into seconds of input audio done."""

    def __init__(self, total: float, tracks: int, shifts: int, show: bool,
                 callback: Callable[[dict], None] | None) -> None:
        self.total = total
        self.tracks = tracks
        self.shifts = max(1, shifts)
        self.callback = callback
        self.track = 0
        self.model_length = 1
        self.segment_length = 1
        self.done = 0.0
        self.bar = None
        if show:
            import tqdm

            self.bar = tqdm.tqdm(total=round(total, 2), unit="s", desc="separation", leave=False,
                                 bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")

    def demucs_event(self, event: dict) -> None:
        if event.get("state") != "end":
            return
        models = max(1, int(event.get("models", 1)))
        # fraction of this pass (one model, one shift) done: chunks finish in order of offset
        chunk = min(1.0, (int(event.get("segment_offset", 0)) + self.segment_length) / self.model_length)
        per_model = (int(event.get("shift_idx", 0)) + chunk) / self.shifts
        fraction = (self.track + (int(event.get("model_idx_in_bag", 0)) + per_model) / models) / self.tracks
        self.update(fraction * self.total)

    def update(self, seconds: float) -> None:
        seconds = min(self.total, max(self.done, seconds))
        self.done = seconds
        if self.bar is not None:
            self.bar.n = round(seconds, 2)
            self.bar.refresh()
        if self.callback is not None:
            self.callback({"stage": "separation", "seconds_done": seconds, "seconds_total": self.total})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def separate(
    mix: np.ndarray,
    sample_rate: int,
    model: torch.nn.Module,
    device: str | torch.device = "cpu",
    segment: float | None = None,
    overlap: float = 0.25,
    shifts: int = 0,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> Separation:
    """Separate ``mix`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz) with ``model``.

    One-call form of ``Separator(model, device, segment, overlap, shifts).separate(...)``; see
    :class:`Separator` for the arguments.
    """
    return Separator(model, device=device, segment=segment, overlap=overlap, shifts=shifts).separate(
        mix, sample_rate, progress=progress, callback=callback
    )
