"""Runware's two official Python SDKs side by side: ``import runware`` is ``runware-sdk`` (the current SDK) and
``import runware_legacy`` is ``runware`` 0.5.24, each from its own installed files.

Used by the suite (``conftest.py``) and by ``benchmarks/client_overhead.py``, which compares the bridge with the
current SDK. See docs/testing-with-emulators.md.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["install_runware_importer"]


def install_runware_importer() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _SharedFolderImporter) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SharedFolderImporter())


class _SharedFolderImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import each of Runware's two official SDKs from its own files, under its own name.

    ``runware`` 0.5.24 and ``runware-sdk`` both install into the folder ``runware/``: they share its
    ``__init__.py`` (whichever was installed last wins) and the legacy ``types.py``/``utils.py`` are shadowed by
    the new ``types/``/``utils/`` packages, so plain ``import runware`` works for neither. This finder reads
    each distribution's own file list (its ``RECORD``), serves ``runware`` as ``runware-sdk`` (the current SDK,
    what a new user installs) and ``runware_legacy`` as 0.5.24, never runs the shared ``__init__.py`` (import
    from the submodules: ``runware.client``, ``runware_legacy.server``), and refuses a file whose hash no longer
    matches its distribution's record. See docs/testing-with-emulators.md.
    """

    names: ClassVar[dict[str, str]] = {"runware": "runware-sdk", "runware_legacy": "runware"}

    def __init__(self) -> None:
        self._modules: dict[str, dict[str, tuple[str, bool]]] = {}

    def _files(self, top: str) -> dict[str, tuple[str, bool]]:
        if top not in self._modules:
            modules: dict[str, tuple[str, bool]] = {}
            distribution = importlib.metadata.distribution(self.names[top])
            for record in distribution.files or []:
                if record.parts[0] != "runware" or record.suffix != ".py":
                    continue
                location = str(distribution.locate_file(record))
                parts = list(record.parts[1:])
                is_package = parts[-1] == "__init__.py"
                name = ".".join(parts[:-1] if is_package else [*parts[:-1], parts[-1][:-3]])
                if name and record.hash is not None:
                    digest = hashlib.sha256(Path(location).read_bytes()).digest()
                    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != record.hash.value:
                        raise ImportError(f"{location} is not the file {self.names[top]} installed; reinstall it: "
                                          f"pip install --force-reinstall --no-deps {self.names[top]}")
                modules[name] = (location, is_package)
            self._modules[top] = modules
        return self._modules[top]

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        top, _, rest = fullname.partition(".")
        if top not in self.names:
            return None
        if not rest:  # the shared __init__.py belongs to neither: an empty package
            spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            spec.submodule_search_locations = []
            return spec
        entry = self._files(top).get(rest)
        if entry is None:
            return None
        location, is_package = entry
        return importlib.util.spec_from_file_location(fullname, location,
                                                      submodule_search_locations=[] if is_package else None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        return None
