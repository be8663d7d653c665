"""Reference stores: DNA records of known models with their lineage, locally or as a Hub dataset.

`store` (the `ReferenceStore` and its nearest-neighbour queries), `layout` (files of a store, the same on disk
and on the Hub), `sync` (safe push, pull), `build` (a store from responses files, with its calibration).
"""
from __future__ import annotations

from .layout import CALIBRATION_NAME, CONFIG_NAME, LINEAGE_NAME, README_NAME
from .store import DEFAULT_ROOT, ReferenceStore, default_store_dirs
from .sync import PushResult, pull, push

__all__ = ["CALIBRATION_NAME", "CONFIG_NAME", "DEFAULT_ROOT", "LINEAGE_NAME", "PushResult", "README_NAME",
           "ReferenceStore", "default_store_dirs", "pull", "push"]
