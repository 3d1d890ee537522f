"""422 answers that name the field the way a client wrote it.

Bodies that take 'one item or a list' are unions; pydantic reports errors for both
branches and tags locations with the branch's type name. A client sent one shape, so
only the errors of that shape are kept, and the tags are dropped: the location reads
`["body", 3, "kind"]` — the fourth event's kind.

The errors echo the offending input, which may be what made it invalid: a lone surrogate
(not encodable as UTF-8) or NaN / Infinity / 1e400 (not JSON). Such values are echoed as
text (`"\\ud800"`, `"nan"`), so the 422 itself is always strict JSON."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recommender.storage import STORE_ERRORS, StoreUnavailable

log = logging.getLogger(__name__)


def _is_branch_tag(part) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or part.startswith("list["))


def clean_errors(errors: list[dict], body_is_list: bool | None) -> list[dict]:
    kept = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if len(loc) > 1 and loc[0] == "body" and _is_branch_tag(loc[1]):
            branch_is_list = loc[1].startswith("list[")
            if body_is_list is not None and branch_is_list != body_is_list:
                continue
            loc = [loc[0]] + loc[2:]
        kept.append({**err, "loc": loc})
    return kept or errors


def encodable(value):
    """`value` with every string made UTF-8-encodable and every non-finite float made text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v) for v in value]
    return value


def invalid(loc: Sequence, msg: str, value=None) -> RequestValidationError:
    """A 422 naming one field, shaped like pydantic's own (`{"detail": [{"type", "loc",
    "msg", "input"}]}`) and answered by validation_error_handler, so its body is strict JSON
    too. Raise it: `raise invalid(["query", "q"], "must not be empty", q)`."""
    return invalid_fields([(loc, msg, value)])


def invalid_fields(errors: Iterable[tuple[Sequence, str, object]]) -> RequestValidationError:
    """A 422 naming several fields: (loc, msg, input) each."""
    return RequestValidationError([{"type": "value_error", "loc": list(loc), "msg": msg,
                                    "input": value} for loc, msg, value in errors])


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    body = getattr(exc, "body", None)
    body_is_list = isinstance(body, list) if body is not None else None
    errors = clean_errors(list(exc.errors()), body_is_list)
    return JSONResponse(status_code=422, content=encodable(jsonable_encoder({"detail": errors})))


async def store_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After for faults outside our control (read-only file, full disk): they
    pass, and the client should retry. Any other SQLite error is a bug: a plain 500."""
    store = request.app.state.store
    reason = store.fault_reason(exc)
    if reason is None:
        log.error("database error", exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": "internal error"})
    if not isinstance(exc, StoreUnavailable):
        store.note_fault(exc)
    return JSONResponse(status_code=503, headers={"Retry-After": str(StoreUnavailable(reason).retry_after)},
                        content={"detail": f"database unavailable ({reason}); retry shortly"})


__all__ = ["STORE_ERRORS", "clean_errors", "encodable", "invalid", "invalid_fields",
           "store_unavailable_handler", "validation_error_handler"]
