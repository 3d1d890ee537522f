"""Model artifacts: arrays + JSON round trip; anything damaged is refused, clearly."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from recommender.model.artifacts import (ARRAYS_FILE, MANIFEST_FILE, ArtifactError, artifact_files, read_artifact,
                                         read_artifact_files, sha256_of, write_artifact)

ARRAYS = {"factors": np.arange(12, dtype=np.float32).reshape(4, 3),
          "terms": np.array(["alpha", "beta"], dtype=np.str_)}


def test_round_trip(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {"params": {"factors": 3}})
    arrays, manifest = read_artifact(path)
    assert np.array_equal(arrays["factors"], ARRAYS["factors"])
    assert arrays["terms"].tolist() == ["alpha", "beta"]
    assert manifest["params"] == {"factors": 3} and manifest["version"] == "v1"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_existing_version_is_not_overwritten(tmp_path):
    write_artifact(tmp_path, "v1", ARRAYS, {})
    with pytest.raises(ArtifactError, match="already exists"):
        write_artifact(tmp_path, "v1", ARRAYS, {})


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="pickle"):
        write_artifact(tmp_path, "v1", {"bad": np.array([{"a": 1}], dtype=object)}, {})


def test_truncated_arrays_file_is_refused(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    data = (path / ARRAYS_FILE).read_bytes()
    (path / ARRAYS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="checksum"):
        read_artifact(path)


def test_bad_json_manifest_is_refused(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    (path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_artifact(path)


def test_wrong_shapes_are_refused_even_with_a_matching_checksum(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    np.savez(path / ARRAYS_FILE, factors=np.zeros((2, 3), dtype=np.float32), terms=ARRAYS["terms"])
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["checksums"][ARRAYS_FILE] = sha256_of(path / ARRAYS_FILE)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="'factors'"):
        read_artifact(path)


def test_missing_files_are_refused(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    (path / ARRAYS_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        read_artifact(path)
    with pytest.raises(ArtifactError, match="missing"):
        read_artifact(tmp_path / "nope")


def rewrite(path, new_arrays: dict | None = None, **manifest_changes):
    """Replace a model folder's arrays (their checksum made to match) and/or manifest fields."""
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    if new_arrays is not None:
        np.savez(path / ARRAYS_FILE, **new_arrays)
        manifest["checksums"][ARRAYS_FILE] = sha256_of(path / ARRAYS_FILE)
    manifest.update(manifest_changes)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_model_is_written_under_missing_folders_over_a_crashed_write(tmp_path):
    """The root's folders are made as needed, and a temporary folder a crashed write of the
    same version by this process left is cleared, not refused."""
    root = tmp_path / "a" / "b" / "models"
    stale = root / f".tmp-v1-{os.getpid()}"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("from a crashed write")
    path = write_artifact(root, "v1", ARRAYS, {"params": {"b": 1, "a": 2}})
    assert sorted(p.name for p in path.iterdir()) == [ARRAYS_FILE, MANIFEST_FILE]
    assert read_artifact(write_artifact(tmp_path / "c" / "d", "v1", ARRAYS, {}))[1]["version"] == "v1"
    # the manifest is stable text: indented, keys sorted (the same model, the same bytes)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert (path / MANIFEST_FILE).read_text() == json.dumps(manifest, indent=2, sort_keys=True)


def test_the_registrys_copy_of_the_files_reads_as_the_folder(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {"params": {"factors": 3}})
    files = artifact_files(path)
    assert files == {ARRAYS_FILE: (path / ARRAYS_FILE).read_bytes(), MANIFEST_FILE: (path / MANIFEST_FILE).read_bytes()}
    arrays, manifest = read_artifact_files(files, "db:v1")
    folder_arrays, folder_manifest = read_artifact(path)
    assert manifest == folder_manifest and arrays.keys() == folder_arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], folder_arrays[name])
    with pytest.raises(ArtifactError, match=f"^db:v1/{MANIFEST_FILE}: missing$"):
        read_artifact_files({ARRAYS_FILE: files[ARRAYS_FILE]}, "db:v1")
    with pytest.raises(ArtifactError, match=f"^db:v1/{ARRAYS_FILE}: missing$"):
        read_artifact_files({MANIFEST_FILE: files[MANIFEST_FILE]}, "db:v1")


def test_each_refusal_names_the_file_and_the_reason(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    (path / ARRAYS_FILE).unlink()
    with pytest.raises(ArtifactError, match=f"^{path / ARRAYS_FILE}: missing$"):
        read_artifact(path)
    path = write_artifact(tmp_path, "v2", ARRAYS, {})
    rewrite(path, format="someone-elses/1")
    with pytest.raises(ArtifactError, match=f"^{path}/{MANIFEST_FILE}: not a paperrec-model/1 manifest$"):
        read_artifact(path)
    (path / MANIFEST_FILE).write_text("[1, 2]")  # JSON, not an object
    with pytest.raises(ArtifactError, match="not a paperrec-model/1 manifest"):
        read_artifact(path)
    for field, value in (("checksums", ["x"]), ("arrays", "factors"), ("arrays", {"factors": [4, 3]})):
        path = write_artifact(tmp_path, f"v-{field}-{len(str(value))}", ARRAYS, {})
        rewrite(path, **{field: value})
        with pytest.raises(ArtifactError, match=r"'checksums' and 'arrays' must be objects \(one entry per file / array\)"):
            read_artifact(path)


def test_arrays_that_do_not_match_the_manifest_are_refused(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    rewrite(path, new_arrays={**ARRAYS, "extra": np.zeros(2)})
    with pytest.raises(ArtifactError, match=r"arrays \['extra', 'factors', 'terms'\] do not match the manifest \['factors', 'terms'\]"):
        read_artifact(path)
    path = write_artifact(tmp_path, "v2", ARRAYS, {})
    rewrite(path, new_arrays={**ARRAYS, "factors": ARRAYS["factors"].astype(np.float64)})
    with pytest.raises(ArtifactError, match=r"array 'factors' is float64\[4, 3\], manifest says float32\[4, 3\]$"):
        read_artifact(path)


def test_a_file_that_is_not_an_npz_or_needs_pickle_is_unreadable(tmp_path):
    path = write_artifact(tmp_path, "v1", ARRAYS, {})
    (path / ARRAYS_FILE).write_bytes(b"not a zip file at all")
    rewrite(path, checksums={ARRAYS_FILE: sha256_of(path / ARRAYS_FILE)})
    with pytest.raises(ArtifactError, match=f"^{path / ARRAYS_FILE}: unreadable"):
        read_artifact(path)
    # an object array saved by someone else, its manifest and checksum made to match: loading
    # it would unpickle, so it is refused before anything is built from it
    path = write_artifact(tmp_path, "v2", ARRAYS, {})
    rewrite(path, new_arrays={**ARRAYS, "terms": np.array([{"a": 1}, None], dtype=object)})
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["arrays"]["terms"] = {"shape": [2], "dtype": "object"}
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unreadable"):
        read_artifact(path)
