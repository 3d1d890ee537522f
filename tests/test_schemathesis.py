"""Schemathesis against the live OpenAPI schema of the real server (uvicorn subprocess).

Every operation of the schema, with the API key, with generated valid and invalid inputs:
no answer is a 5xx, and every answer matches the documented schema (body, content type,
headers). A bounded number of examples per operation keeps the run under ~90 s; run with
`PAPERREC_SCHEMATHESIS_EXAMPLES=500` for a deeper search.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.checks import (content_type_conformance, negative_data_rejection,
                                 not_a_server_error, response_headers_conformance,
                                 response_schema_conformance)

from tests.helpers import API_KEY, AUTH, LiveServer

EXAMPLES = int(os.environ.get("PAPERREC_SCHEMATHESIS_EXAMPLES", "60"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance,
          response_headers_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, module_seeded):
    """The real server on a seeded store, once per backend."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    server = LiveServer(module_seeded, f"{API_KEY},other-key", tmp / "server.log")
    yield server
    server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


# A generated invalid body may be over the 1 MiB limit: a 413 refuses it as surely as a 422
# (schemathesis' default list of rejections lacks it, and such a case made this flaky).
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


@pytest.fixture(scope="module")
def live_schema(live_server):
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    return schemathesis.openapi.from_url(live_server.url + "/openapi.json", config=config)


def _operation_labels() -> list[str]:
    """Collected from the app's schema (no server needed to collect); the test then runs
    against the schema the live server serves, which must be the same."""
    from service.app import create_app
    from recommender.core.settings import Settings

    spec = create_app(Settings(db=":memory:")).openapi()
    return [f"{method.upper()} {path}" for path, item in spec["paths"].items()
            for method in item if method in {"get", "post", "put", "patch", "delete"}]


LABELS = _operation_labels()


@pytest.mark.may_skip_in_ci  # an operation with no input has nothing to make invalid
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("label", LABELS)
def test_every_operation(live_schema, label, mode):
    operation = live_schema[label.split(" ", 1)[1]][label.split(" ", 1)[0]]
    if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query
                                                or operation.body):
        pytest.skip("no input to make invalid")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)

    run()


def test_the_live_schema_covers_every_route(live_schema):
    live = {f"{m.upper()} {p}" for p, item in live_schema.raw_schema["paths"].items() for m in item
            if m in {"get", "post", "put", "patch", "delete"}}
    assert live == set(LABELS)
    for label in ("GET /recommendations", "POST /events", "POST /papers", "GET /papers/{paper_id}",
                  "GET /trending", "GET /users/{user_id}", "GET /health", "POST /experiments"):
        assert label in live
