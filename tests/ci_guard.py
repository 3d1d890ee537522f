"""In CI a skipped test is a failed test, unless it is marked `may_skip_in_ci`.

Why: a test that skips proves nothing, and CI has everything the suite needs -- .ci/run
installs PostgreSQL and Chromium, and the clean clone sits beside `shared/`, where the seed
parser's raw sources are. A skip there means something the test needs went missing, which
is what the test run is for finding out; a green run with skipped tests hid exactly that.
Outside CI (`CI` unset) skips stay skips, and the summary lists them (`-rs` in addopts).

Marked `may_skip_in_ci`: skips that say nothing is missing (a schemathesis operation with
no input to make invalid; the long durability variant outside `-m slow`).
"""
from __future__ import annotations

import pytest

from tests.helpers import in_ci

MARK = "may_skip_in_ci"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail") \
            and item.get_closest_marker(MARK) is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"CI: {item.nodeid} must run in CI but skipped ({reason}); "
                           f"install what it needs in .ci/run, or mark it {MARK} if the skip "
                           "says nothing is missing")
