"""Experiments: what a config may say, who sees which variant, and serving one list under them.

Why a hash and not a stored assignment: sha256 of (secret salt, experiment, user_id) gives every reader
the same variant on every request and after every restart with no table to keep, and the
experiment's name is part of the hash, so a reader's variant in one experiment says nothing
about their variant in another (independent across experiments).

Kinds:
- ``ab``: each reader sees the list of the strategy of their variant; variants carry traffic
  weights and one of them is the control.
- ``interleave``: exactly two variants; every reader in the experiment sees one list merged
  from both strategies by team-draft interleaving, and each slot remembers which variant
  contributed it (``sources``), so clicks are credited to that variant.

Several experiments may run at once. A reader takes part in at most one of them (a list is
ranked by one strategy): running experiments are considered oldest first, and the reader
joins the first one whose ``traffic`` share (default 1.0, hashed independently per
experiment) includes them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
import secrets
import re
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.experiments.interleaving import team_draft

KINDS = ("ab", "interleave")
# Used with fullmatch: `$` also matches before a final newline, so "name\n" passed `match`.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
MAX_VARIANTS = 16


class InvalidConfig(ValueError):
    """A config that cannot be accepted; ``loc`` names the offending field
    (e.g. ``("variants", 1, "strategy")``) so the API's 422 points at it."""

    def __init__(self, loc: Sequence[str | int], msg: str, value=None):
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc = tuple(loc)
        self.msg = msg
        self.value = value


@dataclass(frozen=True)
class Variant:
    name: str
    strategy: str
    weight: float = 1.0


@dataclass(frozen=True)
class Experiment:
    name: str
    variants: tuple[Variant, ...]
    control: str
    kind: str = "ab"
    traffic: float = 1.0
    description: str = ""
    # Per-experiment secret mixed into the assignment hash (see assign_variant); stored with
    # the config, never shown by the API. Empty for experiments created before it existed.
    salt: str = ""

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def weights(self) -> np.ndarray:
        """Relative weights scaled to a largest of 1: their sum cannot overflow (1e308
        twice summed to inf, and every reader landed in one variant)."""
        w = np.array([v.weight for v in self.variants], dtype=np.float64)
        top = w.max() if len(w) else 0.0
        return w / top if np.isfinite(top) and top > 0 else w

    def to_config(self) -> dict:
        config = {
            "name": self.name, "kind": self.kind, "control": self.control,
            "traffic": self.traffic, "description": self.description,
            "variants": [{"name": v.name, "strategy": v.strategy, "weight": v.weight}
                         for v in self.variants],
        }
        if self.salt:
            config["salt"] = self.salt
        return config

    @classmethod
    def from_row(cls, row: dict) -> "Experiment":
        """From a stored experiments row (already validated when it was created)."""
        cfg = row["config"]
        return cls(
            name=row["name"], kind=row["kind"], control=row.get("control") or cfg["control"],
            traffic=float(cfg.get("traffic", 1.0)), description=cfg.get("description", ""),
            variants=tuple(Variant(v["name"], v["strategy"], float(v.get("weight", 1.0)))
                           for v in cfg["variants"]),
            salt=str(cfg.get("salt") or ""),
        )


def _number(value, loc) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfig(loc, "must be a number", value)
    value = float(value)
    if not np.isfinite(value):
        raise InvalidConfig(loc, "must be finite", value)
    return value


def _name(value, loc) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidConfig(loc, "must be 1-64 characters of letters, digits, '_', '.', '-', "
                                 "starting with a letter or digit", value)
    return value


def validate_config(raw: dict, strategies: Iterable[str]) -> Experiment:
    """Check a config dict and return the experiment it describes.

    Raises InvalidConfig naming the field: a bad name, a duplicate variant name, an unknown
    strategy, a negative weight or weights not summing to a positive number, a control that
    is not one of the variants, an interleave experiment without exactly two variants."""
    if not isinstance(raw, dict):
        raise InvalidConfig((), "must be an object", raw)
    known = set(strategies)
    allowed = {"name", "kind", "variants", "control", "traffic", "description"}
    for key in raw:
        if key not in allowed:
            raise InvalidConfig((key,), f"unknown field; allowed: {', '.join(sorted(allowed))}")
    name = _name(raw.get("name"), ("name",))
    kind = raw.get("kind", "ab")
    if kind not in KINDS:
        raise InvalidConfig(("kind",), f"must be one of {', '.join(KINDS)}", kind)
    variants_raw = raw.get("variants")
    if not isinstance(variants_raw, list) or len(variants_raw) < 2:
        raise InvalidConfig(("variants",), "must be a list of at least two variants", variants_raw)
    if len(variants_raw) > MAX_VARIANTS:
        raise InvalidConfig(("variants",), f"at most {MAX_VARIANTS} variants")
    if kind == "interleave" and len(variants_raw) != 2:
        raise InvalidConfig(("variants",), "an interleave experiment compares exactly two "
                                           "strategies", len(variants_raw))
    variants: list[Variant] = []
    seen: set[str] = set()
    for i, v in enumerate(variants_raw):
        if not isinstance(v, dict):
            raise InvalidConfig(("variants", i), "must be an object", v)
        for key in v:
            if key not in {"name", "strategy", "weight"}:
                raise InvalidConfig(("variants", i, key), "unknown field; allowed: name, "
                                                          "strategy, weight")
        vname = _name(v.get("name"), ("variants", i, "name"))
        if vname in seen:
            raise InvalidConfig(("variants", i, "name"), f"duplicate variant name {vname!r}",
                                vname)
        seen.add(vname)
        strategy = v.get("strategy")
        if strategy not in known:
            raise InvalidConfig(("variants", i, "strategy"),
                                f"unknown strategy; one of {', '.join(sorted(known))}", strategy)
        weight = _number(v.get("weight", 1.0), ("variants", i, "weight"))
        if weight < 0:
            raise InvalidConfig(("variants", i, "weight"), "must not be negative", weight)
        variants.append(Variant(vname, strategy, weight))
    total = sum(v.weight for v in variants)
    if not total > 0:
        raise InvalidConfig(("variants",), "weights must sum to a positive number",
                            [v.weight for v in variants])
    if not np.isfinite(total):
        raise InvalidConfig(("variants",), "weights must sum to a finite number",
                            [v.weight for v in variants])
    control = raw.get("control", variants[0].name)
    if control not in seen:
        raise InvalidConfig(("control",), "must be the name of one of the variants", control)
    traffic = _number(raw.get("traffic", 1.0), ("traffic",))
    if not 0 < traffic <= 1:
        raise InvalidConfig(("traffic",), "must be in (0, 1]", traffic)
    description = raw.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise InvalidConfig(("description",), "must be a string of at most 2000 characters")
    return Experiment(name=name, variants=tuple(variants), control=control, kind=kind,
                      traffic=traffic, description=description)


class ExperimentExists(ValueError):
    pass


def create_experiment(store, raw: dict, strategies: Iterable[str],
                      salt: str | None = None) -> dict:
    """Validate a config and store it as a running experiment; returns the stored row.
    Raises InvalidConfig, or ExperimentExists (names are never reused, so an old report
    keeps meaning what it meant). The assignment salt is a fresh secret unless given (a
    replay that must assign like an earlier run); a config cannot set it."""
    exp = dataclasses.replace(validate_config(raw, strategies),
                              salt=salt if salt is not None else secrets.token_hex(16))
    if store.get_experiment(exp.name) is not None:
        raise ExperimentExists(exp.name)
    store.save_experiment(exp.name, exp.kind, exp.to_config(), exp.control)
    return store.get_experiment(exp.name)


# -- assignment ----------------------------------------------------------------------------

def unit_hash(*parts: str) -> float:
    """A number in [0, 1) fixed by the parts: the first 8 bytes of sha256 over the parts
    joined with NUL (which ids cannot contain), so ("a", "bc") and ("ab", "c") differ."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _salted(experiment: Experiment) -> tuple[str, ...]:
    return (experiment.salt, experiment.name) if experiment.salt else (experiment.name,)


def assign_variant(experiment: Experiment, user_id: str) -> Variant:
    """The reader's variant: sticky (a pure function of the experiment and the reader),
    shares follow the weights. With the experiment's secret salt in the hash, nobody can
    compute which reader ids land in a variant (with a public hash of (experiment, user)
    one could mint ids of one variant and flood it with lists)."""
    u = unit_hash("variant", *_salted(experiment), user_id)
    cum = np.cumsum(experiment.weights)
    i = int(np.searchsorted(cum / cum[-1], u, side="right"))
    return experiment.variants[min(i, len(experiment.variants) - 1)]


def in_traffic(experiment: Experiment, user_id: str) -> bool:
    return experiment.traffic >= 1.0 or unit_hash("traffic", *_salted(experiment), user_id) < experiment.traffic


def choose_experiment(running: Sequence[Experiment], user_id: str) -> Experiment | None:
    """Oldest running experiment whose traffic share includes the reader, if any."""
    for exp in running:
        if in_traffic(exp, user_id):
            return exp
    return None


# -- serving one list ------------------------------------------------------------------------

RUNNING_TTL_S = 1.0
_RUNNING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def running_experiments(store) -> tuple[Experiment, ...]:
    """The running experiments, oldest first, read and parsed at most once a second.

    Read and parsed on every request, 300 running experiments took a list from 7 to 96 ms.
    Created or stopped through this process's store, the change is seen at once
    (store.experiments_changed); through another process, within RUNNING_TTL_S."""
    now = time.monotonic()
    changed = store.experiments_changed
    hit = _RUNNING.get(store)
    if hit is not None and hit[0] == changed and now - hit[1] < RUNNING_TTL_S:
        return hit[2]
    running = tuple(Experiment.from_row(r) for r in store.list_experiments(status="running"))
    _RUNNING[store] = (changed, now, running)
    return running


def strategies_of(recommender) -> tuple[str, ...]:
    """The strategy registry: every named ranking function the live recommender offers."""
    return tuple(recommender.STRATEGIES)


@dataclass(frozen=True)
class ServedList:
    request_id: str
    user_id: str
    strategy: str
    rows: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    paper_ids: list[str]
    experiment: str | None = None
    variant: str | None = None
    sources: list[str] | None = None
    model_version: str | None = None
    # The recommender's own list when it is served as ranked (not interleaved): the same
    # object for as long as the recommender keeps a reader's list, so what is derived
    # from it (the service's JSON) can be kept with it.
    ranked: object | None = None


def interleave_label(experiment: Experiment) -> str:
    return "interleave(" + ",".join(v.strategy for v in experiment.variants) + ")"


def serve_list(store, recommender, user_id: str, k: int, exclude_seen: bool = True,
               as_of: float | None = None, strategy: str | None = None,
               running: Sequence[Experiment] | None = None,
               request_id: str | None = None) -> ServedList:
    """Rank one list for a reader under the running experiments and log it.

    An explicit ``strategy`` (a debug override) bypasses experiments. Otherwise the reader's
    experiment (if any) picks the strategy, or interleaves two. The list is logged with its
    request_id (and, for interleaving, the variant behind each slot) before it is returned,
    so every event that carries the request_id can be attributed to it."""
    request_id = request_id or uuid.uuid4().hex
    exp = None
    if strategy is None:
        if running is None:
            running = running_experiments(store)
        exp = choose_experiment(running, user_id)
    variant_name: str | None = None
    sources: list[str] | None = None
    as_ranked = None
    if exp is not None and exp.kind == "interleave":
        a, b = exp.variants
        _, ranked_a = recommender.recommend(user_id, k, exclude_seen, as_of, a.strategy)
        _, ranked_b = recommender.recommend(user_id, k, exclude_seen, as_of, b.strategy)
        merged, teams = team_draft(ranked_a.rows.tolist(), ranked_b.rows.tolist(), k,
                                   random.Random(request_id))
        pos_a = {int(r): i for i, r in enumerate(ranked_a.rows)}
        pos_b = {int(r): i for i, r in enumerate(ranked_b.rows)}
        scores, reasons = [], []
        for row, team in zip(merged, teams):
            src, pos = (ranked_a, pos_a) if team == 0 else (ranked_b, pos_b)
            scores.append(float(src.scores[pos[row]]))
            reasons.append(src.reasons[pos[row]])
        rows = np.array(merged, dtype=np.int64)
        used = interleave_label(exp)
        variant_name = "interleaved"
        sources = [exp.variants[t].name for t in teams]
        ranked_rows, ranked_scores, ranked_reasons = rows, np.array(scores), reasons
    else:
        if exp is not None:
            v = assign_variant(exp, user_id)
            variant_name, strategy = v.name, v.strategy
        used, ranked = recommender.recommend(user_id, k, exclude_seen, as_of, strategy)
        ranked_rows, ranked_scores, ranked_reasons = ranked.rows, ranked.scores, ranked.reasons
        as_ranked = ranked
    catalog = recommender.catalog  # after ranking: recommend() may have added papers
    paper_ids = [catalog.paper_ids[int(r)] for r in ranked_rows]
    model_version = getattr(recommender, "model_version", None)
    store.log_served_list(
        request_id, user_id, used, paper_ids, model_version=model_version,
        experiment=exp.name if exp else None, variant=variant_name, sources=sources,
        served_at_unix=as_of,
    )
    return ServedList(request_id=request_id, user_id=user_id, strategy=used, rows=ranked_rows,
                      scores=ranked_scores, reasons=list(ranked_reasons), paper_ids=paper_ids,
                      experiment=exp.name if exp else None, variant=variant_name,
                      sources=sources, model_version=model_version, ranked=as_ranked)
