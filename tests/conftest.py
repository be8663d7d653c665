"""Shared pytest set-up. Fixtures live in plugin modules, one per area, so they stay small and separate."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# One intra-op thread: on 2-vCPU machines torch with 2 threads is several times slower for small models.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Keep every cache the tests write (Hub downloads from the local server, response cache) out of the user's home.
_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="hf-dna-tests-"))
atexit.register(shutil.rmtree, _CACHE_ROOT, ignore_errors=True)
os.environ["HF_HUB_CACHE"] = str(_CACHE_ROOT / "hub")
os.environ["HF_DATASETS_CACHE"] = str(_CACHE_ROOT / "datasets")
os.environ["HF_DNA_CACHE"] = str(_CACHE_ROOT / "responses")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-responses"

pytest_plugins = ["tests.fixtures_models", "tests.fixtures_hub"]


@pytest.fixture(scope="session")
def shared_responses() -> Path:
    """../shared/data/reference-responses, or skip when this checkout has no shared data beside it."""
    if not (SHARED / "paper600.parquet").is_file():
        pytest.skip("../shared/data/reference-responses is not present")
    return SHARED


@pytest.fixture(scope="session")
def paper100_store():
    """The embedded paper600-100 reference store (skips when it is not built)."""
    from hf_dna.reference.store import DEFAULT_ROOT, ReferenceStore

    path = DEFAULT_ROOT / "paper600-100"
    if not path.is_dir():
        pytest.skip("embedded paper600-100 store is not built")
    return ReferenceStore.load(path)
