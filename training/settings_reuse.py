"""Whether tonight's fit searches its settings again or keeps those of the serving model.

Why: the settings search (recommender/model/tuning.py: decay, ALS alpha and
regularisation, popularity counting, the words' weight, the item graph, EASE's λ) is 10-13 s of
CiteULike-a's 72 s job, and on one more day of events it chooses what it chose the night
before: what the data decides changes with the data's shape, not with a day of it. So the
job keeps the serving model's chosen settings (all of them are in its manifest) until the
events have grown by `SEARCH_AGAIN_GROWTH` since the search that chose them, or
`SEARCH_AGAIN_AFTER_DAYS` have passed; then it searches again. `paperrec train --search`
searches whatever the figures. Where the settings came from is kept with every model
(`stats.settings_origin`: when, on how many events, by which version), so a reuse never
outlives those bounds by being passed from model to model. While they are kept, the
serving model's learned blend and words' encoder are kept too (`continues_serving`).
"""
from __future__ import annotations

from dataclasses import dataclass

from recommender.core.times import DAY_S
from recommender.model.hybrid import HybridModel

# Search again once the events grew by this factor since the last search...
SEARCH_AGAIN_GROWTH = 1.25
# ...or once the last search is this old.
SEARCH_AGAIN_AFTER_DAYS = 7.0


@dataclass
class SettingsPlan:
    """The settings to fix in tonight's config (None: search), why, and where they come from."""
    fixed: dict | None
    why: str
    origin: dict


def chosen_settings(model: HybridModel) -> dict:
    """Every setting the search chooses, as the HybridConfig fields that fix it."""
    return {"half_life_days": float(model.conf_config.half_life_days),
            "decay_from": model.conf_config.decay_from, "repeats": model.conf_config.repeats,
            "popularity": model.pop_config.to_dict(),
            "als_alpha": model.config.als_alpha, "als_regularization": model.config.als_regularization,
            "graph_alpha": model.config.graph_alpha, "graph_beta": model.config.graph_beta,
            "text_weight": model.config.text_weight,
            # whether EASE is in the blend, and its λ and words' weight where it is
            "ease": bool(model.config.ease),
            **({"ease_lambda": model.config.ease_lambda, "ease_words": model.config.ease_words or 0.0}
               if model.config.ease else {})}


def plan(serving: HybridModel | None, serving_version: str | None, n_events: int, now: float,
         version: str, search: bool = False) -> SettingsPlan:
    """Keep the serving model's settings, or search (see the module docstring). `n_events`:
    the events tonight's candidate is fit on; `now`: unix seconds; `version`: tonight's."""
    searched_here = {"version": version, "searched_at": now, "events": int(n_events)}
    if search:
        return SettingsPlan(None, "searched (asked to)", searched_here)
    if serving is None:
        return SettingsPlan(None, "searched (no model serving)", searched_here)
    origin = serving.stats.get("settings_origin")
    if not origin:
        return SettingsPlan(None, f"searched ({serving_version} records no settings search)", searched_here)
    settings = chosen_settings(serving)
    if any(v is None for v in settings.values()):
        return SettingsPlan(None, f"searched ({serving_version} has settings left unchosen)", searched_here)
    growth = n_events / max(int(origin["events"]), 1)
    age_days = (now - float(origin["searched_at"])) / DAY_S
    if growth >= SEARCH_AGAIN_GROWTH:
        return SettingsPlan(None, f"searched (events x{growth:.2f} since the search of {origin['version']})",
                            searched_here)
    if age_days >= SEARCH_AGAIN_AFTER_DAYS:
        return SettingsPlan(None, f"searched (the search of {origin['version']} is {age_days:.1f} days old)",
                            searched_here)
    return SettingsPlan(settings, f"kept from {origin['version']} (events x{growth:.2f}, "
                        f"{age_days:.1f} days since its search)", dict(origin))


def continues_serving(plan: SettingsPlan, serving: HybridModel | None) -> bool:
    """Whether tonight's candidate is the serving model refit on tonight's events
    (`HybridModel.refit`: its settings, its words' encoder and its learned blend kept, the
    components refit, ALS continuing from its factors) rather than a new fit with the kept
    settings. It is whenever the settings are kept and the serving model learned its blend
    (a blend left at the prior, for want of validation data, is learned again as the data
    grows): a fit learns the blend on a validation slice, which is most of a fit's time
    (CiteULike-a: ~50 of a ~65 s job), and on one more day of events it learns what it
    learned the night before -- the same argument as for the settings, and the same bounds
    (a quarter more events or a week: then a full fit searches and learns everything)."""
    return plan.fixed is not None and serving is not None and serving.blender.learned
