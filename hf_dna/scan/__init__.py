"""Scans: whole catalogues (an org, a list of models) extracted and audited, in this process or on Ray.

`run.scan` is the entry point; `catalogue` lists the models and pins each to a revision, `output` knows what a
local store dir or Hub dataset already holds and writes records and verdicts, `ray_tasks` runs one task per
model (in-process or as Ray tasks with retries). The scan sits above the audit: it extracts with the pipeline,
judges with `hf_dna.audit` and writes through `hf_dna.reference`. Ray is imported only with ``--ray``.
"""
from __future__ import annotations

from .catalogue import ScanItem, model_list, plan
from .output import HubOutput, LocalOutput, verdict_path
from .ray_tasks import ExtractJob, extract_task, gpus_for
from .run import ScanResult, scan

__all__ = ["ExtractJob", "HubOutput", "LocalOutput", "ScanItem", "ScanResult", "extract_task", "gpus_for",
           "model_list", "plan", "scan", "verdict_path"]
