"""Model artifacts: arrays + JSON round trip; anything damaged is refused, clearly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.model.artifacts import ARRAYS_FILE, MANIFEST_FILE, ArtifactError, read_artifact, sha256_of, write_artifact

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
