"""The suite's own guards, each run on a tiny test file in a pytest of its own with this
repository's configuration: in CI a skip fails unless marked may_skip_in_ci
(tests/ci_guard.py), and a thread that dies of an exception fails its test (pyproject.toml's
filterwarnings)."""
from __future__ import annotations

import os
import subprocess
import sys
from xml.etree import ElementTree

import pytest

from tests.helpers import ROOT

SAMPLE = '''
import threading
import pytest

def test_skips():
    pytest.skip("something is missing")

@pytest.mark.may_skip_in_ci
def test_skips_and_may():
    pytest.skip("nothing to do here")

def test_thread_dies():
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()

def test_passes():
    pass
'''


def outcomes(tmp_path, ci: bool) -> dict[str, str]:
    """test name -> its outcome in a pytest run of SAMPLE under this repo's config."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
                    "--rootdir", str(ROOT), "-p", "tests.ci_guard", "-p", "no:cacheprovider",
                    "-q", f"--junitxml={report}", str(tmp_path / "test_sample.py")],
                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = {child.tag for child in case}
        found[case.get("name")] = ("FAILED" if kinds & {"failure", "error"} else
                                   "SKIPPED" if "skipped" in kinds else "PASSED")
    return found


@pytest.mark.parametrize("ci", [True, False], ids=["ci", "elsewhere"])
def test_skips_fail_only_in_ci_and_dead_threads_fail_everywhere(tmp_path, ci):
    got = outcomes(tmp_path, ci)
    assert got.get("test_passes") == "PASSED", got
    assert got.get("test_thread_dies") == "FAILED", got
    assert got.get("test_skips") == ("FAILED" if ci else "SKIPPED"), got
    assert got.get("test_skips_and_may") == "SKIPPED", got
