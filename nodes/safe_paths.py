"""Paths a prompt names, kept inside ComfyUI's folders: a node reads files only from the input folder (or the
output/temp folder for ``[output]``/``[temp]`` names, as core loaders do) and writes only into the output folder.

A ComfyUI server started with ``--listen`` runs prompts from anyone who can reach it, so a path string in a prompt
must not reach other files of the machine: ``..``, absolute paths and symlinks leading out of the folder are
refused. The server's operator can allow more folders to read from with :data:`INPUT_ROOTS_ENV` (off by default).
The command line converter does not use this module: its user owns the machine.

No ComfyUI import: the folders are passed in, so unit tests use temporary folders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Extra folders (absolute, separated by ``os.pathsep``) that path strings may read from, besides ComfyUI's
#: input folder; e.g. ``STEREOCRAFTER3D_INPUT_ROOTS=/mnt/videos:/srv/footage``. Unset: none.
INPUT_ROOTS_ENV = "STEREOCRAFTER3D_INPUT_ROOTS"
#: The annotations core nodes accept at the end of a file name (``clip.mp4 [input]``), as folder_paths strips them.
ANNOTATIONS = ("input", "output", "temp")


class UnsafePathError(ValueError):
    """A path string from a prompt leads outside the folders a node may use; the message names the input and fix."""


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it, both resolved through every symlink (``..`` included)."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real == base or base in real.parents


def allowed_input_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The operator's extra input folders from :data:`INPUT_ROOTS_ENV` (absolute entries only; empty ones skipped)."""
    value = (os.environ if environ is None else environ).get(INPUT_ROOTS_ENV, "")
    roots = [Path(entry).expanduser() for entry in value.split(os.pathsep) if entry.strip()]
    return [root for root in roots if root.is_absolute()]


def split_annotation(name: str) -> tuple[str, str | None]:
    """``"clip.mp4 [input]"`` → ``("clip.mp4", "input")``; a name without one of :data:`ANNOTATIONS` → (name, None)."""
    for folder in ANNOTATIONS:
        tag = f"[{folder}]"
        if name.endswith(tag):
            return name[: -len(tag)].rstrip(), folder
    return name, None


def resolve_input_file(
    value: str,
    input_name: str,
    folders: Mapping[str, Path],
    extra_roots: Sequence[Path] | None = None,
) -> Path:
    """The file a prompt's path string names, inside one of ComfyUI's folders; else :class:`UnsafePathError`.

    Args:
        value: a name relative to the input folder (sub-folders allowed, e.g. ``clips/a.mp4``), optionally
            annotated (``a.mp4 [input]``, ``a.mp4 [output]``, ``a.mp4 [temp]``) as core loaders accept; or an
            absolute path inside one of ``extra_roots``.
        input_name: the node input it came from, for messages (``video_path``).
        folders: ComfyUI's folders by annotation: ``{"input": ..., "output": ..., "temp": ...}`` (input required).
        extra_roots: folders the operator allowed (default: :func:`allowed_input_roots`).

    The file must exist; ``..`` and symlinks are followed before the check, so neither can lead out.
    """
    roots = allowed_input_roots() if extra_roots is None else list(extra_roots)
    name, annotation = split_annotation(value.strip())
    if (annotation or "input") not in folders:
        raise UnsafePathError(f"{input_name}: {value!r}: [{annotation}] files cannot be read here; use [input].")
    base = Path(folders[annotation or "input"])
    how = (
        f"put the file in ComfyUI's input folder ({folders['input']}) and give its name relative to it "
        "(sub-folders allowed, e.g. clips/my_clip.mp4), or connect a Load Video node"
    )
    if roots:
        how += f"; allowed absolute folders: {os.pathsep.join(str(root) for root in roots)}"
    else:
        how += f"; a server operator can allow other folders with the environment variable {INPUT_ROOTS_ENV}"
    if name.startswith("~") or Path(name).is_absolute():
        path = Path(name).expanduser()
        if annotation is None and any(_inside(path, root) for root in [base, *roots]):
            return _existing(path, input_name, how)
        raise UnsafePathError(f"{input_name}: {value!r} is an absolute path outside the allowed folders: {how}.")
    path = base / name
    if not _inside(path, base):
        why = "goes up out of" if ".." in Path(name).parts else "is a symlink leading out of"
        raise UnsafePathError(f"{input_name}: {value!r} {why} ComfyUI's {annotation or 'input'} folder: {how}.")
    return _existing(path, input_name, how)


def _existing(path: Path, input_name: str, how: str) -> Path:
    if not path.is_file():
        raise UnsafePathError(f"{input_name}: {path} is not a file: {how}.")
    return path


def output_folder(prefix: str, output_dir: Path) -> tuple[Path, str, str]:
    """(folder, file name start, subfolder) of a ``filename_prefix`` inside ComfyUI's output folder, the folder
    created; ``../``, absolute prefixes and symlinks leading out are an :class:`UnsafePathError`, as core save nodes
    refuse them (``folder_paths.get_save_image_path``; we also resolve symlinks, which it does not)."""
    text = prefix.strip()
    normal = os.path.normpath(text) if text else ""
    name = os.path.basename(normal)
    fix = "give a prefix relative to ComfyUI's output folder, e.g. stereo3d/converted (sub-folders allowed)"
    if not name or name in (".", "..") or text.endswith(("/", os.sep)):
        raise UnsafePathError(f"filename_prefix: {prefix!r} has no file name: {fix}.")
    if text.startswith("~") or Path(text).is_absolute() or os.path.isabs(normal):
        raise UnsafePathError(f"filename_prefix: {prefix!r} is an absolute path; saving outside the output folder "
                              f"({output_dir}) is not allowed: {fix}.")  # fmt: skip
    subfolder = os.path.dirname(normal)
    folder = Path(output_dir) / subfolder
    if not _inside(folder, output_dir):
        why = "goes up out of" if ".." in Path(normal).parts else "leads through a symlink out of"
        raise UnsafePathError(f"filename_prefix: {prefix!r} {why} the output folder ({output_dir}): {fix}.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, name, subfolder


def check_output_file(path: Path, output_dir: Path) -> None:
    """Refuse an output file (or its work files) that a symlink placed in the output folder leads elsewhere."""
    for candidate in (path, path.with_name(path.name + ".partial"), path.with_name(path.name + ".partial.d")):
        if (candidate.is_symlink() or candidate.exists()) and not _inside(candidate, output_dir):
            raise UnsafePathError(
                f"filename_prefix: {candidate} is a symlink leading out of the output folder ({output_dir}); "
                "remove it or choose another filename_prefix."
            )
