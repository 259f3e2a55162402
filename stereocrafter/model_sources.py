"""Where each model comes from (Hugging Face repository, revision, files) and where it goes in a models folder.

A models folder has ComfyUI's layout, one sub-folder per kind, Hugging Face folders kept as they are::

    <models>/depthcrafter/DepthCrafter/                               tencent/DepthCrafter
    <models>/stereocrafter/StereoCrafter/                             TencentARC/StereoCrafter
    <models>/diffusers/stable-video-diffusion-img2vid-xt-1-1/         stabilityai/stable-video-diffusion-img2vid-xt-1-1
    <models>/depth_anything/Depth-Anything-V2-Small-hf/              depth-anything/Depth-Anything-V2-Small-hf
    <models>/stereocrafter/StereoCrafter2/                            TencentARC/StereoCrafter2 (transformer)
    <models>/diffusers/Wan2.1-VACE-14B-diffusers/                     Wan-AI/Wan2.1-VACE-14B-diffusers (VAE, UMT5, tok.)

The ComfyUI nodes search ComfyUI's folders for these kinds; the command line searches one models folder
(:func:`default_models_root`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable naming the command line's models folder.
MODELS_ENV = "STEREOCRAFTER3D_MODELS"
#: The command line's models folder outside a ComfyUI tree.
USER_MODELS_ROOT = Path("~/.cache/stereocrafter3d/models")


@dataclass(frozen=True)
class ModelSource:
    """A model kind: its models sub-folder, default folder name, Hugging Face repo, revision and files."""

    folder_name: str
    default_name: str
    repo_id: str
    revision: str
    allow_patterns: tuple[str, ...]
    gated: bool = False
    #: What a download fetches, for messages (the files ``allow_patterns`` select).
    download_size: str = ""


DEPTHCRAFTER = ModelSource(
    "depthcrafter",
    "DepthCrafter",
    "tencent/DepthCrafter",
    "c1a22b53f8abf80cd0b025adf29e637773229eca",
    ("config.json", "diffusion_pytorch_model.safetensors"),
    download_size="about 3 GB",
)
STEREOCRAFTER = ModelSource(
    "stereocrafter",
    "StereoCrafter",
    "TencentARC/StereoCrafter",
    "main",  # no commit hash could be verified offline; see the README
    ("config.json", "diffusion_pytorch_model.safetensors", "unet_diffusers/*"),
    download_size="about 3 GB",
)
SVD = ModelSource(
    "diffusers",
    "stable-video-diffusion-img2vid-xt-1-1",
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
    "main",  # no commit hash could be verified offline; see the README
    (
        "model_index.json",
        "feature_extractor/*",
        "scheduler/*",
        "image_encoder/config.json",
        "image_encoder/model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ),
    gated=True,
    download_size="about 1.5 GB",
)


#: The command line's light depth model (``--depth-model depth-anything``): Apache-2.0, about 100 MB.
DEPTH_ANYTHING = ModelSource(
    "depth_anything",
    "Depth-Anything-V2-Small-hf",
    "depth-anything/Depth-Anything-V2-Small-hf",
    "main",  # no commit hash could be verified offline
    ("config.json", "model.safetensors", "preprocessor_config.json"),
    download_size="about 100 MB",
)


#: StereoCrafter2's fine-tuned Wan2.1-VACE-14B transformer (bf16, sharded safetensors at the repository's root;
#: a ``transformer/`` sub-folder is fetched too if the repository has one).
STEREOCRAFTER2 = ModelSource(
    "stereocrafter",
    "StereoCrafter2",
    "TencentARC/StereoCrafter2",
    "main",  # no commit hash could be verified offline
    (
        "config.json",
        "diffusion_pytorch_model*.safetensors",
        "diffusion_pytorch_model.safetensors.index.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model*.safetensors",
        "transformer/diffusion_pytorch_model.safetensors.index.json",
    ),
    download_size="about 35 GB",
)
#: What StereoCrafter2 takes from the Wan2.1-VACE-14B base: VAE, UMT5-XXL text encoder and tokenizer (its own
#: ~28 GB base transformer is not fetched).
WAN_VACE_BASE = ModelSource(
    "diffusers",
    "Wan2.1-VACE-14B-diffusers",
    "Wan-AI/Wan2.1-VACE-14B-diffusers",
    "main",  # no commit hash could be verified offline
    (
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model*.safetensors",
        "text_encoder/config.json",
        "text_encoder/model*.safetensors",
        "text_encoder/model.safetensors.index.json",
        "tokenizer/*",
    ),
    download_size="about 12 GB",
)


def comfyui_models_root(package_dir: Path | None = None) -> Path | None:
    """``ComfyUI/models`` when this pack sits in ``ComfyUI/custom_nodes/<pack>/``, else None."""
    package_dir = package_dir or Path(__file__).resolve().parent.parent
    custom_nodes = package_dir.parent
    models = custom_nodes.parent / "models"
    if custom_nodes.name == "custom_nodes" and models.is_dir():
        return models
    return None


def default_models_root() -> Path:
    """``$STEREOCRAFTER3D_MODELS``, else ComfyUI's models folder when run inside a ComfyUI tree, else
    ``~/.cache/stereocrafter3d/models``."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    return comfyui_models_root() or USER_MODELS_ROOT.expanduser()


class MissingModelsError(FileNotFoundError):
    """Model folders are missing (and downloading is off); the message names every one, where it was looked for,
    its Hugging Face repository and how to fetch it."""


class HubUnreachableError(MissingModelsError):
    """A download was asked for but the hub does not answer; one line naming the hub and where to put the files."""


#: Seconds a download waits for the hub to answer one request (``HF_HUB_ETAG_TIMEOUT`` overrides it, as it does
#: huggingface_hub's own metadata requests); a stall during a file's transfer is bounded by huggingface_hub's
#: ``HF_HUB_DOWNLOAD_TIMEOUT`` (10 s by default).
HUB_TIMEOUT_S = 10.0
#: How often a download in progress checks for a cancel (ComfyUI's interrupt).
CANCEL_POLL_S = 0.25


def _existing_dir(source: ModelSource, roots: Sequence[Path], name: str) -> Path | None:
    if Path(name).is_absolute() and Path(name).is_dir():
        return Path(name)
    for root in roots:
        candidate = Path(root) / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


def _not_found(source: ModelSource, roots: Sequence[Path], name: str) -> str:
    searched = ", ".join(str(root) for root in roots)
    size = f", {source.download_size}" if source.download_size else ""
    gated = "; the repository is gated: accept its licence on huggingface.co and log in first" if source.gated else ""
    return (
        f"'{name}' was not found in {searched}. Put the {source.repo_id} files there (keeping the Hugging Face "
        f"layout{size}{gated})"
    )


def find_model_dirs(
    wanted: Sequence[tuple[ModelSource, Sequence[Path], str | None]],
    download: bool = False,
    download_hint: str = "allow the download of missing weights",
    interrupt: Callable[[], None] | None = None,
) -> list[Path]:
    """:func:`find_model_dir` for each (source, roots, name), in order. Without ``download`` every missing folder is
    checked first and named in one :class:`MissingModelsError`; with it the missing ones are downloaded (see
    :func:`download_model`; ``interrupt`` may raise to cancel a download)."""
    found = [_existing_dir(source, roots, name or source.default_name) for source, roots, name in wanted]
    missing = [
        _not_found(source, roots, name or source.default_name)
        for (source, roots, name), path in zip(wanted, found, strict=True)
        if path is None
    ]
    if missing and not download:
        if len(missing) == 1:
            raise MissingModelsError(f"{missing[0]}, or {download_hint} to fetch it.")
        listed = "".join(f"\n- {line}." for line in missing)
        raise MissingModelsError(
            f"{len(missing)} model folders are missing:{listed}\nOr {download_hint} to fetch them."
        )
    return [
        path if path is not None else download_model(source, Path(roots[0]) / (name or source.default_name), interrupt)
        for (source, roots, name), path in zip(wanted, found, strict=True)
    ]


def find_model_dir(
    source: ModelSource,
    roots: Sequence[Path],
    name: str | None = None,
    download: bool = False,
    download_hint: str = "allow the download of missing weights",
) -> Path:
    """The folder ``name`` (default: the source's default name) of ``source``'s kind under one of ``roots``.

    ``roots`` are kind folders (e.g. ``models/depthcrafter``). An absolute existing ``name`` is used as is. A missing
    folder is downloaded into the first root when ``download`` is on, else :class:`MissingModelsError` (a
    FileNotFoundError) names the fix (the caller's way to turn the download on is ``download_hint``).
    """
    return find_model_dirs([(source, roots, name)], download, download_hint)[0]


def hub_endpoint() -> str:
    """The hub huggingface_hub talks to (``HF_ENDPOINT``, default https://huggingface.co)."""
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT).rstrip("/")
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_timeout() -> float:
    try:
        return max(float(os.environ.get("HF_HUB_ETAG_TIMEOUT", HUB_TIMEOUT_S)), 0.1)
    except ValueError:
        return HUB_TIMEOUT_S


def _by_hand(source: ModelSource, target: Path) -> str:
    return (
        f"put the {source.repo_id} files ({', '.join(source.allow_patterns)}) into {target} by hand (e.g. `hf download "
        f"{source.repo_id} --local-dir {target}` on a machine with a network; the README's Models section lists the "
        "exact commands), or retry when the hub is reachable"
    )


def check_hub_reachable(source: ModelSource, target: Path) -> None:
    """A :class:`HubUnreachableError` within about ``HF_HUB_ETAG_TIMEOUT`` seconds (default 10) when the hub refuses
    the connection, cannot be resolved, or accepts and never answers; offline mode (``HF_HUB_OFFLINE``) too.

    huggingface_hub's own repository listing has no timeout (it waits for ever on a hub that never answers), so one
    bounded request to the repository's API page comes first. Any HTTP answer (even 401 for a gated repository
    without a login) means the hub is there."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session  # the session the download uses: same proxies and certificates

    endpoint = hub_endpoint()
    if constants.HF_HUB_OFFLINE:  # read from the environment when huggingface_hub was imported
        raise HubUnreachableError(
            f"cannot download {source.repo_id}: HF_HUB_OFFLINE is set (offline mode); unset it, or "
            f"{_by_hand(source, target)}."
        )
    url = f"{endpoint}/api/models/{source.repo_id}/revision/{source.revision}"
    try:
        get_session().head(url, timeout=_hub_timeout())  # any status is an answer
    except Exception as exc:
        if not _network_failure(exc):
            raise
        names = {cls.__name__ for cls in type(exc).__mro__}
        timed_out = bool(names & {"TimeoutException", "Timeout", "TimeoutError", "ReadTimeout"})
        reason = f"no answer within {_hub_timeout():g} s" if timed_out else f"{type(exc).__name__}: {exc}"
        raise HubUnreachableError(
            f"cannot reach the Hugging Face hub at {endpoint} ({reason}) to download {source.repo_id}: "
            f"{_by_hand(source, target)}."
        ) from None


def _run_cancellable(work: Callable[[], object], interrupt: Callable[[], None] | None) -> None:
    """Run ``work`` in a worker thread while this one calls ``interrupt`` every :data:`CANCEL_POLL_S` seconds (it
    raises to cancel: the wait ends at once; the worker stops at its next network timeout or when done)."""
    if interrupt is None:
        work()
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="sc3d-download", daemon=True)
    worker.start()
    while worker.is_alive():
        interrupt()
        worker.join(CANCEL_POLL_S)
    if failure:
        raise failure[0]


def _network_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the network failing (httpx, requests or socket errors, or huggingface_hub's "cannot find
    the files on the hub" after one), as opposed to a bug or a local disk error."""
    if isinstance(exc, MissingModelsError | PermissionError | FileNotFoundError | IsADirectoryError):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "TimeoutException", "TransportError"}:
        return True
    package = type(exc).__module__.split(".")[0]
    return package in ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3") or (
        isinstance(exc, OSError) and exc.errno not in (28, 30)  # disk full, read-only: not the network
    )


def download_model(source: ModelSource, target: Path, interrupt: Callable[[], None] | None = None) -> Path:
    """Fetch ``source`` into ``target`` with huggingface_hub at its pinned revision; a hub that cannot be reached is
    a :class:`HubUnreachableError` within seconds. ``interrupt`` (ComfyUI's cancel check) is called while the files
    download and may raise to stop waiting."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError as exc:
        raise RuntimeError("downloading weights needs huggingface_hub: pip install huggingface_hub") from exc
    check_hub_reachable(source, target)
    logger.info("Downloading %s@%s to %s", source.repo_id, source.revision, target)
    try:
        _run_cancellable(
            lambda: snapshot_download(
                source.repo_id,
                revision=source.revision,
                local_dir=target,
                allow_patterns=list(source.allow_patterns),
                etag_timeout=_hub_timeout(),
            ),
            interrupt,
        )
    except (GatedRepoError, RepositoryNotFoundError) as exc:
        if source.gated:
            raise RuntimeError(
                f"{source.repo_id} is gated: accept its licence on huggingface.co while logged in, then run "
                "`huggingface-cli login` (or set HF_TOKEN) on this machine and try again."
            ) from exc
        raise
    except Exception as exc:
        if not _network_failure(exc):
            raise
        raise HubUnreachableError(
            f"the download of {source.repo_id} from {hub_endpoint()} failed ({type(exc).__name__}: {exc}): "
            f"{_by_hand(source, target)}."
        ) from exc
    return target
