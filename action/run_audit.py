#!/usr/bin/env python3
"""Step script of the hf-dna GitHub Action: run `hf-dna audit`, then report to GitHub.

Reads the action inputs from INPUT_* variables, runs `hf-dna audit MODEL --format json -o REPORT`, and:
- appends a Markdown summary to $GITHUB_STEP_SUMMARY;
- prints one `::warning` annotation per flag, `::error` for flags listed in fail-on;
- writes the outputs verdict, flags, nearest, report-path to $GITHUB_OUTPUT (heredoc syntax: multiline-safe);
- exits 1 only when a fail-on flag fired (audit exit code 3) or the audit itself failed.

`--verdict FILE [--exit-code N]` skips running the audit and reports on a saved verdict instead (for tests and
for workflows that run `hf-dna audit` themselves).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

FLAG_FAILED = 3  # `hf-dna audit` exit code when a --fail-on flag fired


def escape_data(text: str) -> str:
    """Escape a workflow-command message (GitHub's own escaping rules)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (also ':' and ',')."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str) -> str:
    return f"::{level} title={escape_property(title)}::{escape_data(message)}"


def set_outputs(outputs: dict[str, str], path: str | None) -> None:
    """Append outputs to $GITHUB_OUTPUT with a random heredoc delimiter (values may span lines)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(markdown: str, path: str | None) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip() + "\n\n")


def parse_fail_on(value: str) -> set[str]:
    return {code.strip() for code in value.replace(" ", ",").split(",") if code.strip()}


def audit_command(env: dict[str, str], report_path: Path) -> list[str]:
    """The `hf-dna audit` command line for the action inputs."""
    cmd = ["hf-dna", "audit", env["INPUT_MODEL"], "--format", "json", "-o", str(report_path)]
    reference = env.get("INPUT_REFERENCE", "").strip()
    if reference and reference != "default":
        cmd += ["--reference", reference]
    if env.get("INPUT_PROBES", "").strip():
        cmd += ["--probes", env["INPUT_PROBES"].strip()]
    if env.get("INPUT_FAIL_ON", "").strip():
        cmd += ["--fail-on", ",".join(sorted(parse_fail_on(env["INPUT_FAIL_ON"])))]
    publish = env.get("INPUT_PUBLISH", "none").strip() or "none"
    if publish != "none":
        cmd += ["--publish", publish]
    return cmd + shlex.split(env.get("INPUT_EXTRA_ARGS", ""))


def run_audit(env: dict[str, str], report_path: Path) -> tuple[int, str]:
    """Run the audit; returns (exit code, stderr). Stderr is echoed so the job log shows progress and errors."""
    cmd = audit_command(env, report_path)
    print("$ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    return proc.returncode, proc.stderr


def summary_markdown(verdict: dict) -> str:
    """The verdict as Markdown (hf-dna's own template when importable, else a short table)."""
    try:
        from hf_dna.report.governance import verdict_markdown

        return verdict_markdown(verdict)
    except ImportError:
        lines = [f"## hf-dna audit: `{verdict.get('model')}`: {verdict.get('verdict')}", ""]
        lines += [f"- **{f['code']}**: {f['message']}" for f in verdict.get("flags", [])] or ["No flags."]
        return "\n".join(lines)


def report(verdict: dict, exit_code: int, fail_on: set[str], report_path: Path | None,
           env: dict[str, str]) -> int:
    """Annotations, summary and outputs for a verdict; returns the step's exit code."""
    flags = verdict.get("flags") or []
    fired = []
    for flag in flags:
        failing = flag.get("code") in fail_on or "any" in fail_on
        fired += [flag] if failing else []
        message = flag.get("message", "")
        if flag.get("evidence"):
            message += " | evidence: " + json.dumps(flag["evidence"], default=str, sort_keys=True)
        print(annotation("error" if failing else "warning", f"hf-dna {flag.get('code')}: {verdict.get('model')}", message))
    markdown = summary_markdown(verdict)
    if report_path is not None:
        report_path.with_suffix(".md").write_text(markdown, encoding="utf-8")
    append_summary(markdown, env.get("GITHUB_STEP_SUMMARY"))
    nearest = [{k: n.get(k) for k in ("model_id", "distance", "probability", "family")} for n in verdict.get("nearest") or []]
    set_outputs({
        "verdict": str(verdict.get("verdict") or ("flagged" if flags else "clean")),
        "flags": json.dumps([f.get("code") for f in flags]),
        "nearest": json.dumps(nearest),
        "report-path": str(report_path or ""),
    }, env.get("GITHUB_OUTPUT"))
    if exit_code == FLAG_FAILED or fired:
        codes = ", ".join(sorted({f.get("code") for f in fired})) or "a fail-on flag"
        print(f"hf-dna: failing the job: {codes} (listed in fail-on)", file=sys.stderr)
        return 1
    return 0


def report_error(stderr: str, env: dict[str, str]) -> int:
    """The audit could not run: one error annotation, outputs saying so, a failed step."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "hf-dna audit failed"
    model = env.get("INPUT_MODEL", "")
    print(annotation("error", f"hf-dna audit failed: {model}", reason))
    append_summary(f"## hf-dna audit: `{model}`: error\n\n{reason}\n", env.get("GITHUB_STEP_SUMMARY"))
    set_outputs({"verdict": "error", "flags": "[]", "nearest": "[]", "report-path": ""}, env.get("GITHUB_OUTPUT"))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdict", help="Report on this saved verdict JSON instead of running the audit.")
    parser.add_argument("--exit-code", type=int, default=0, help="The audit's exit code for --verdict.")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    fail_on = parse_fail_on(env.get("INPUT_FAIL_ON", ""))
    if args.verdict:
        report_path, exit_code, stderr = Path(args.verdict), args.exit_code, ""
    else:
        out_dir = Path(env.get("INPUT_REPORT_DIR") or Path(env.get("RUNNER_TEMP") or ".") / "hf-dna")
        out_dir.mkdir(parents=True, exist_ok=True)
        report_path = out_dir / "hf-dna-verdict.json"
        exit_code, stderr = run_audit(env, report_path)
    if exit_code not in (0, FLAG_FAILED) or not report_path.is_file():
        return report_error(stderr or f"hf-dna audit exited with {exit_code} and wrote no verdict", env)
    try:
        verdict = json.loads(report_path.read_text(encoding="utf-8"))
    except ValueError as err:
        return report_error(f"unreadable verdict {report_path}: {err}", env)
    return report(verdict, exit_code, fail_on, report_path, env)


if __name__ == "__main__":
    sys.exit(main())
