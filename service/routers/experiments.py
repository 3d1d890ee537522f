"""Experiments: create, list, stop, and read the report (JSON, or a page a person reads)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from recommender.experiments.report import DEFAULT_WINDOW_HOURS, build_report
from recommender.experiments.config import (KINDS, MAX_DESCRIPTION, MAX_NAME, MAX_VARIANTS,
                                            MIN_VARIANTS, ExperimentExists, InvalidConfig,
                                            create_experiment)
from recommender.serving import strategies
from service.deps import ApiKey, StoreDep
from service.errors import invalid
from service.report_page import render_report_page

router = APIRouter(tags=["experiments"])

ExperimentName = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]
# The request schema states the domain's constraints (experiments/config.py); every other rule
# (name characters, duplicate variants, known strategies, weights, control) is checked there.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    strategy: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    weight: float = 1.0


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "content-vs-popular", "kind": "ab", "control": "popular",
        "variants": [{"name": "popular", "strategy": "popular", "weight": 1},
                     {"name": "content", "strategy": "content", "weight": 1}]}]})

    name: Name
    kind: Literal[KINDS] = "ab"  # type: ignore[valid-type]
    variants: Annotated[list[VariantIn], Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS)]
    control: str | None = Field(None, description="a variant name; default the first")
    traffic: float = Field(1.0, description="share of readers in the experiment, (0, 1]")
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""


class VariantOut(BaseModel):
    name: str
    strategy: str
    weight: float


class ExperimentOut(BaseModel):
    name: str
    kind: str
    status: Literal["running", "stopped"]
    control: str | None
    traffic: float
    description: str
    variants: list[VariantOut]
    created_at: str
    stopped_at: str | None


class StopResult(BaseModel):
    experiment: ExperimentOut
    changed: bool = Field(description="false when it was already stopped (a no-op)")


def _out(row: dict) -> ExperimentOut:
    cfg = row["config"]
    return ExperimentOut(
        name=row["name"], kind=row["kind"], status=row["status"], control=row["control"],
        traffic=float(cfg.get("traffic", 1.0)), description=cfg.get("description", ""),
        variants=[VariantOut(**v) for v in cfg["variants"]],
        created_at=row["created_at"], stopped_at=row.get("stopped_at"),
    )


def _get(store, name: str) -> dict:
    row = store.get_experiment(name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown experiment {name!r}")
    return row


@router.post("/experiments", response_model=ExperimentOut, status_code=status.HTTP_201_CREATED)
def post_experiment(body: ExperimentIn, store: StoreDep, _key: ApiKey) -> ExperimentOut:
    """Start an experiment. Readers are assigned by a stable hash of (experiment, user_id).
    422 names the field: duplicate variant names, an unknown strategy, weights that do not
    sum to a positive number, a control that is not a variant. 409 if the name is taken."""
    raw = body.model_dump(exclude_none=True)
    try:
        row = create_experiment(store, raw, strategies.NAMES)
    except InvalidConfig as exc:
        raise invalid(["body", *exc.loc], exc.msg, exc.value) from None
    except ExperimentExists:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"experiment {body.name!r} exists; names are never reused, "
                            "so old reports stay meaningful") from None
    return _out(row)


@router.get("/experiments", response_model=list[ExperimentOut])
def list_experiments(
    store: StoreDep,
    status_: Annotated[Literal["running", "stopped"] | None, Query(alias="status")] = None,
) -> list[ExperimentOut]:
    return [_out(r) for r in store.list_experiments(status=status_)]


@router.post("/experiments/{name}/stop", response_model=StopResult)
def stop_experiment(name: ExperimentName, store: StoreDep, _key: ApiKey) -> StopResult:
    """Stop assigning readers; the report stays. Stopping a stopped experiment is a no-op."""
    _get(store, name)
    changed = store.stop_experiment(name)
    return StopResult(experiment=_out(_get(store, name)), changed=changed)


Window = Annotated[float, Query(gt=0, le=24 * 30, description="hours an event without a "
                                "request_id may follow the list that showed the paper")]


@router.get("/experiments/{name}/report")
def experiment_report(name: ExperimentName, store: StoreDep,
                      window_hours: Window = DEFAULT_WINDOW_HOURS) -> dict:
    """Per variant: readers, lists, items shown, attributed clicks/reads/upvotes, rates per
    item and per reader, the difference to control with a 95% interval and a reader-level
    p-value, a sample-ratio-mismatch test, and the cumulative click rate over time.
    Interleaving experiments report per-reader wins/losses/ties with a sign test."""
    return build_report(store, _get(store, name), window_hours)


@router.get("/experiments/{name}", response_class=HTMLResponse)
def experiment_page(name: ExperimentName, store: StoreDep,
                    window_hours: Window = DEFAULT_WINDOW_HOURS) -> HTMLResponse:
    """The report as a page: tables per variant and a plot of the cumulative rate."""
    return HTMLResponse(render_report_page(build_report(store, _get(store, name), window_hours)))
