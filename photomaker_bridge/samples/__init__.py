"""Sample reference faces shipped with the package, for ``explain``, the demo and first experiments.

They are synthetic drawings (no real person), made once with Pillow and committed as package data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["sample_faces"]


def sample_faces() -> list[Path]:
    """Paths of the bundled sample faces: two JPEGs and a PNG, 384×384."""
    folder = resources.files(__name__)
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.startswith("face_"))
