"""Old import paths (hf-dna 0.1's flat layout) as aliases of the modules that now hold them, for one release.

``import hf_dna.generate`` or ``from hf_dna.calibrate import RelationModel`` still work, with a
DeprecationWarning naming the new path; the alias is the new module object itself (so patching it patches the
real thing). `hf_dna.extract` stays a public module path (``from hf_dna.extract import extract``) without warning.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module -> new module
ALIASES = {
    "hf_dna.extract": "hf_dna.pipeline.extract",
    "hf_dna.probes": "hf_dna.pipeline.probes",
    "hf_dna.record": "hf_dna.pipeline.record",
    "hf_dna.dna": "hf_dna.pipeline.dna",
    "hf_dna.embed": "hf_dna.pipeline.embed",
    "hf_dna.cache": "hf_dna.pipeline.cache",
    "hf_dna.generate": "hf_dna.pipeline.generate",
    "hf_dna.responses_file": "hf_dna.pipeline.backends.responses_file",
    "hf_dna.distributed": "hf_dna.pipeline.distributed",
    "hf_dna.shipped": "hf_dna.pipeline.shipped",
    "hf_dna.features": "hf_dna.evidence.sketches",
    "hf_dna.calibrate": "hf_dna.evidence.relation",
    "hf_dna.refbuild": "hf_dna.reference.build",
    "hf_dna.publish": "hf_dna.audit.publish",
    "hf_dna.tree": "hf_dna.report.tree",
    "hf_dna.figures": "hf_dna.report.figures",
    "hf_dna.mapping": "hf_dna.report.mapping",
    "hf_dna.compare": "hf_dna.report.compare",
}
#: public paths kept on purpose: no warning
STABLE = {"hf_dna.extract"}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target
        self.module: ModuleType | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self.module = importlib.import_module(self.target)
        self._spec, self._loader = self.module.__spec__, getattr(self.module, "__loader__", None)
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        # the import system stamped the alias spec on the real module: give it back its own
        module.__spec__, module.__loader__ = self._spec, self._loader
        module.__name__ = self.target


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001 (the finder protocol)
        new = ALIASES.get(fullname)
        if new is None:
            return None
        if fullname not in STABLE:
            warnings.warn(f"{fullname} moved to {new}; the old path goes in the next release",
                          DeprecationWarning, stacklevel=3)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder on `sys.meta_path` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
