"""Turn command-line paths into clips: a video file, a folder of image frames, or a folder of videos.

Example::

    clips = discover_clips(["footage/", "cam1.mp4"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidgru.errors import EmptyFolderError, InputError, SourceNotFoundError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_FRAMES_FPS = 10.0


@dataclass(frozen=True)
class Clip:
    """One recorded sequence of frames. ``name`` identifies it in scores and events (the file's stem)."""

    name: str
    path: Path
    kind: Literal["video", "frames"]

    def frame_paths(self) -> list[Path]:
        if self.kind != "frames":
            raise TypeError("only a frames clip has frame paths")
        return sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _folder_clips(folder: Path) -> list[Clip]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    if videos:
        return [Clip(p.stem, p, "video") for p in videos]
    if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
        return [Clip(folder.name, folder, "frames")]
    raise EmptyFolderError(
        f"{folder} holds no videos ({', '.join(sorted(VIDEO_EXTENSIONS))}) and no image frames; "
        "point at a folder with footage in it"
    )


def discover_clips(paths: Sequence[str | Path]) -> list[Clip]:
    """Expand paths into clips, in the order given. Raises :class:`InputError` subclasses."""
    if not paths:
        raise InputError("no input given; pass one or more video files or folders")
    clips: list[Clip] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SourceNotFoundError(f"{path} does not exist; check the path")
        if path.is_dir():
            clips.extend(_folder_clips(path))
        else:
            # Any file is tried as a video: OpenCV reads containers we do not list.
            clips.append(Clip(path.stem, path, "video"))
    seen: dict[str, Path] = {}
    for clip in clips:
        if clip.name in seen and seen[clip.name] != clip.path:
            raise InputError(
                f"two inputs are both named '{clip.name}' ({seen[clip.name]} and {clip.path}); "
                "rename one, since scores and events are keyed by file name"
            )
        seen[clip.name] = clip.path
    return list({c.path: c for c in clips}.values())
