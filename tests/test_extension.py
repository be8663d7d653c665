"""`hf dna`: hf-dna fits huggingface_hub's CLI-extension mechanism (`hf extensions install OWNER/hf-dna`).

What `hf extensions install` does (huggingface_hub/cli/extensions.py): it first fetches
raw.githubusercontent.com/OWNER/hf-dna/HEAD/hf-dna and, if that file exists, installs it as a shell-script
extension; otherwise it creates a venv and `pip install`s github.com/OWNER/hf-dna/archive/HEAD.zip, then requires
the console script `hf-dna` in that venv, records it in ~/.local/share/hf/extensions/hf-dna/manifest.json, and
`hf dna ARGS` runs it. These tests check each of those conditions offline.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from hf_dna._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_console_script_is_hf_dna():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("hf-dna") == "hf_dna.cli:main"


def test_repo_name_maps_to_hf_dna_command():
    from huggingface_hub.cli.extensions import _normalize_repo_id
    from huggingface_hub.cli.hf import app

    assert _normalize_repo_id("acme/hf-dna") == ("acme", "hf-dna", "dna")
    builtin = {alias.strip() for name in app.commands for alias in name.split("|")}
    assert {"models", "extensions"} <= builtin
    assert "dna" not in builtin  # `hf dna` is free for the extension


def test_no_root_file_shadows_the_python_package():
    # a file named `hf-dna` at the repo root would be installed as a shell script instead of the package
    assert not (ROOT / "hf-dna").exists()


def test_pyproject_description_is_what_hf_shows():
    # hf reads the first line starting with "description" from pyproject.toml for `hf extensions list`
    line = next(l.strip() for l in (ROOT / "pyproject.toml").read_text().splitlines() if l.strip().startswith("description"))
    description = line.partition("=")[2].strip().strip("\"'")
    assert description.startswith("Audit Hugging Face model lineage")


def test_hf_dispatches_dna_to_the_installed_extension(tmp_path):
    from huggingface_hub.cli.extensions import ExtensionManifest

    executable = shutil.which("hf-dna") or str(Path(sys.executable).parent / "hf-dna")
    hf = shutil.which("hf") or str(Path(sys.executable).parent / "hf")
    ext_dir = tmp_path / ".local" / "share" / "hf" / "extensions" / "hf-dna"
    ExtensionManifest(owner="acme", repo="hf-dna", repo_id="acme/hf-dna", short_name="dna", executable_path=executable,
                      type="python", installed_at=datetime.now(timezone.utc), description="hf-dna test",
                      commit_sha=None).save(ext_dir)
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_DISABLE_UPDATE_CHECK": "1", "NO_COLOR": "1"}
    version = subprocess.run([hf, "dna", "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"hf-dna, version {__version__}"
    helptext = subprocess.run([hf, "dna", "tree", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert helptext.returncode == 0 and "--method [upgma|nj]" in helptext.stdout
    failing = subprocess.run([hf, "dna", "tree"], env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1 and failing.stderr.startswith("Error:")  # exit codes pass through
    listing = subprocess.run([hf, "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert "dna" in listing.stdout and "acme/hf-dna" in listing.stdout


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_source_archive_builds_a_wheel_with_the_console_script(tmp_path):
    pytest.importorskip("hatchling", reason="offline wheel build needs hatchling installed")
    archive = tmp_path / "HEAD.zip"  # what github.com/OWNER/hf-dna/archive/HEAD.zip serves
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=zip", "--prefix=hf-dna-main/", "-o", str(archive),
                    "HEAD"], check=True, timeout=120)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "src")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "-w", str(tmp_path / "dist"), str(tmp_path / "src" / "hf-dna-main")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "dist").glob("hf_dna-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "hf-dna = hf_dna.cli:main" in entry
    assert "hf_dna/cli/__init__.py" in names and "hf_dna/templates/report.html.j2" in names
    assert "hf_dna/data/probes/paper600.jsonl" in names
