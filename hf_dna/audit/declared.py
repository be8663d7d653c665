"""What a model card (or the command line) says a model derives from."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import hub
from ..errors import HubOfflineError, RepoNotFoundError
from .verdict import Declared


@dataclass
class ModelFiles:
    """A model's metadata as read once per audit (`hub.ModelMetadata`), and where it was read."""

    metadata: hub.ModelMetadata | None
    where: str  # "local model files" | "model card" | why nothing was read


def read_model_files(model: str, token: str | None, notes: list[str], revision: str | None = None) -> ModelFiles:
    """The model's card and file metadata: from a local dir/file, else from the Hub (a note when unavailable)."""
    if os.path.exists(model):
        return ModelFiles(hub.local_metadata(model), "local model files")
    if hub.is_offline():
        notes.append("Hub offline (HF_HUB_OFFLINE=1): model card not read; no base declared (use --base-model)")
        return ModelFiles(None, "offline")
    try:
        return ModelFiles(hub.model_metadata(model, revision=revision, token=token), "model card")
    except (RepoNotFoundError, HubOfflineError) as err:
        where = "model not on the Hub" if isinstance(err, RepoNotFoundError) else "model card not read"
        notes.append(f"{where} ({err}): no base declared (use --base-model)")
        return ModelFiles(None, where)


def declared_lineage(files: ModelFiles | None, base_models: list[str] | tuple[str, ...] | None,
                     relation: str | None, notes: list[str]) -> Declared:
    """Declared bases from the command line when given, else from the model's card (`read_model_files`)."""
    if base_models or relation:
        notes.append("declared base from --base-model/--relation (the model card was not read)")
        return Declared(list(dict.fromkeys(base_models or [])), relation, "cli", relation is not None)
    meta = files.metadata if files is not None else None
    if meta is None:
        return Declared()
    where = files.where
    notes.extend(f"{where}: {warning}" for warning in meta.warnings)
    bases = list(dict.fromkeys(meta.base_models))
    if not bases and "README.md" not in meta.files:
        notes.append(f"no model card in the {where}: no base declared (use --base-model)")
        return Declared()
    if bases:
        sources = ", ".join(f"{b} ({'/'.join(meta.base_model_sources.get(b, [])) or 'card'})" for b in bases)
        notes.append(f"declared base read from the {where}: {sources}")
    if meta.base_model_relation and not meta.relation_declared:
        notes.append(f"relation {meta.base_model_relation!r} inferred (no base_model_relation in the card)")
    return Declared(bases, meta.base_model_relation, "card", bool(meta.relation_declared))
