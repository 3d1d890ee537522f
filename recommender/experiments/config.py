"""Experiments: what a config may say, and creating one.

Kinds:
- ``ab``: each reader sees the list of the strategy of their variant; variants carry traffic
  weights and one of them is the control.
- ``interleave``: exactly two variants; every reader in the experiment sees one list merged
  from both strategies by team-draft interleaving, and each slot remembers which variant
  contributed it (``sources``), so clicks are credited to that variant.

The constraints below are the only definition: the API's request schema is built from them
(service/routers/experiments.py) and every config, from the API or a file, is checked by
`validate_config`.
"""
from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("ab", "interleave")
MAX_NAME = 64
# Used with fullmatch: `$` also matches before a final newline, so "name\n" passed `match`.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,%d}" % (MAX_NAME - 1))
MIN_VARIANTS, MAX_VARIANTS = 2, 16
MAX_DESCRIPTION = 2000



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
        raise InvalidConfig(loc, f"must be 1-{MAX_NAME} characters of letters, digits, '_', "
                                 "'.', '-', starting with a letter or digit", value)
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
    if not isinstance(variants_raw, list) or len(variants_raw) < MIN_VARIANTS:
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
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidConfig(("description",), f"must be a string of at most {MAX_DESCRIPTION} characters")
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
