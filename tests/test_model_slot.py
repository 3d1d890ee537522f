"""The model slot (recommender/serving/model_slot.py): a trained model lined up with the live
catalog (ServedModel) and the slot that follows the registry (ModelSlot)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.model.artifacts import ArtifactError, write_artifact
from recommender.model.hybrid import HybridModel
from recommender.serving.model_slot import ModelMismatch, ModelSlot, ServedModel
from tests.helpers import CONFIG, synthetic

IDS = [f"p{i}" for i in range(80)]


@pytest.fixture(scope="module")
def model():
    texts, titles, users, items, _ = synthetic()
    return HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles, config=CONFIG)


@pytest.fixture
def written(tmp_path, model):
    return write_artifact(tmp_path, "v1", ServedModel.arrays_for(model, IDS), model.manifest())


def paper(pid: str) -> dict:
    return {"paper_id": pid, "title": f"graph network study {pid}", "abstract": "node edge", "upvotes": 2}


def test_a_written_model_loads_with_its_paper_ids(written, model):
    served = ServedModel.load("v1", written)
    assert served.version == "v1" and served.paper_ids == IDS and served.model.n_items == 80
    np.testing.assert_allclose(served.model.score_history([(3, "read", None)]),
                               model.score_history([(3, "read", None)]), rtol=1e-6)


def test_arrays_that_do_not_fit_together_are_refused(tmp_path, model):
    arrays = ServedModel.arrays_for(model, IDS)
    short = {**arrays, "paper_ids": arrays["paper_ids"][:-1]}
    nan = {**arrays, "V": np.where(np.arange(arrays["V"].size).reshape(arrays["V"].shape) == 0,
                                   np.nan, arrays["V"]).astype(np.float32)}
    without = {k: v for k, v in arrays.items() if k != "paper_ids"}
    for version, bad, why in (("short", short, "paper ids for"), ("nan", nan, "NaN"),
                              ("none", without, "no paper_ids")):
        path = write_artifact(tmp_path, version, bad, model.manifest())
        with pytest.raises(ArtifactError, match=why):
            ServedModel.load(version, path)


def test_papers_added_since_training_join_the_model(written):
    served = ServedModel.load("v1", written)
    assert served.align(IDS, paper) == 0
    assert served.align(IDS + ["new-1", "new-2"], paper) == 2  # one by one, in place
    model = served.model
    assert served.paper_ids[-2:] == ["new-1", "new-2"] and model.n_items == 82
    many = [f"batch-{i}" for i in range(ServedModel.COPY_FROM)]
    assert served.align(served.paper_ids + many, paper) == len(many)  # on a copy, swapped in
    assert served.model is not model and served.model.n_items == 82 + len(many)
    with pytest.raises(ModelMismatch):
        served.align(["other"] + IDS, paper)


def test_the_slot_follows_the_registry_and_remembers_a_model_that_failed(written, tmp_path):
    registry = {"active": None}
    slot = ModelSlot(lambda: registry["active"], paper)
    slot.check(lambda: IDS, wait=True)
    assert slot.served is None and slot.problems() == [] and slot.version is None
    registry["active"] = {"version": "v1", "path": str(written)}
    slot.check(lambda: IDS, wait=True)
    assert slot.version == "v1" and slot.problems() == []
    registry["active"] = {"version": "broken", "path": str(tmp_path / "missing")}
    slot.check(lambda: IDS, wait=True)
    assert slot.version == "v1" and "model broken not loaded" in slot.problems()[0]
    assert "serving v1" in slot.problems()[0]
    registry["active"] = {"version": "v1", "path": str(written)}  # rolled back: healed
    slot.check(lambda: IDS, wait=True)
    assert slot.problems() == [] and slot.version == "v1"
    slot.drop("model dropped: because")
    assert slot.served is None and slot.problems() == ["model dropped: because"]


def test_a_served_model_keeps_eases_list_form_and_its_copies_share_it(tmp_path):
    """EASE factored over fewer readers than papers: the model a slot serves keeps XᵀK for
    its lists (ease.FactoredEase.for_lists), a model written by training does not, and a
    copy that takes a batch of papers shares the array instead of building it again."""
    texts, titles, users, items, _ = synthetic(n_papers=160, n_users=120)
    ids = [f"p{i}" for i in range(160)]
    trained = HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles,
                              config=replace(CONFIG, ease=True))
    assert type(trained.comps.ease).__name__ == "FactoredEase" and trained.comps.ease.XK is None
    path = write_artifact(tmp_path, "v1", ServedModel.arrays_for(trained, ids), trained.manifest())
    served = ServedModel.load("v1", path)
    XK = served.model.comps.ease.XK
    assert XK is not None and XK.shape == (160, trained.comps.ease.K.shape[0])
    history = [(3, "read", None), (5, "upvote", None)]
    np.testing.assert_allclose(served.model.score_history(history), trained.score_history(history),
                               rtol=1e-5, atol=1e-6)
    many = [f"batch-{i}" for i in range(ServedModel.COPY_FROM)]
    assert served.align(ids + many, paper) == len(many)
    assert served.model.comps.ease.XK is XK and served.model.n_items == 160 + len(many)
    checked = ServedModel.load("v1", path, lists=False)  # the training job's way: batches only
    assert checked.align(ids + many, paper) == len(many)
    assert checked.model.comps.ease.XK is None
