"""The one module that reads and writes model files.

A model is a folder `<root>/<version>/` holding `arrays.npz` (numpy arrays, loaded with
`allow_pickle=False`) and `manifest.json` (parameters, data counts, metrics, and for every
array its shape, dtype; for the npz file its sha256). Never pickle: a model file is data,
and loading it must not run code.

The registry also keeps each version's two files in the database (Store.save_model_files),
so a replica on another machine loads the same bytes, verified the same way
(read_artifact_files), knowing only the database.

Why a new folder per version, written under a temporary name and renamed with
`os.replace`: a server that loads while the trainer writes never sees half a model
(arxiv-sanity-lite's rule). Loading checks everything before anything is used, so a
truncated or mismatched artifact is refused with a clear error and the caller keeps the
model it has.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
FORMAT = "paperrec-model/1"


class ArtifactError(Exception):
    """The artifact cannot be used; the message says which file and why."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_artifact(root: Path, version: str, arrays: dict[str, np.ndarray], manifest: dict) -> Path:
    """Write a complete model folder and move it into place in one rename."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise ArtifactError(f"model version {version!r} already exists at {final}")
    tmp = root / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ArtifactError(f"array {name!r} has dtype object, which would need pickle")
    np.savez(tmp / ARRAYS_FILE, **arrays)
    full = {
        **manifest,
        "format": FORMAT,
        "version": version,
        "arrays": {n: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)}
                   for n, a in arrays.items()},
        "checksums": {ARRAYS_FILE: sha256_of(tmp / ARRAYS_FILE)},
    }
    with open(tmp / MANIFEST_FILE, "w") as fh:
        json.dump(full, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def artifact_files(path: Path) -> dict[str, bytes]:
    """The files of a model folder, as the registry keeps them (Store.save_model_files)."""
    path = Path(path)
    return {name: (path / name).read_bytes() for name in (ARRAYS_FILE, MANIFEST_FILE)}


def read_artifact(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Load and verify a model folder, or raise ArtifactError saying what is wrong."""
    path = Path(path)
    files = {}
    for name in (MANIFEST_FILE, ARRAYS_FILE):
        if not (path / name).is_file():
            raise ArtifactError(f"{path / name}: missing")
        files[name] = (path / name).read_bytes()
    return read_artifact_files(files, str(path))


def read_artifact_files(files: dict[str, bytes], where: str) -> tuple[dict[str, np.ndarray], dict]:
    """Load and verify a model from its files' bytes (a folder's, or the registry's copy in
    the database), or raise ArtifactError naming `where` and what is wrong."""
    manifest_path = f"{where}/{MANIFEST_FILE}"
    arrays_path = f"{where}/{ARRAYS_FILE}"
    if MANIFEST_FILE not in files:
        raise ArtifactError(f"{manifest_path}: missing")
    try:
        manifest = json.loads(files[MANIFEST_FILE].decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path}: not a {FORMAT} manifest")
    if ARRAYS_FILE not in files:
        raise ArtifactError(f"{arrays_path}: missing")
    checksums, declared = manifest.get("checksums"), manifest.get("arrays")
    if not isinstance(checksums, dict) or not isinstance(declared, dict) or not all(
            isinstance(spec, dict) for spec in declared.values()):
        raise ArtifactError(f"{manifest_path}: 'checksums' and 'arrays' must be objects "
                            "(one entry per file / array)")
    expected = checksums.get(ARRAYS_FILE)
    actual = hashlib.sha256(files[ARRAYS_FILE]).hexdigest()
    if expected != actual:
        raise ArtifactError(f"{arrays_path}: checksum mismatch (truncated or replaced file)")
    try:
        with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{arrays_path}: unreadable ({exc})") from None
    if set(declared) != set(arrays):
        raise ArtifactError(f"{where}: arrays {sorted(arrays)} do not match the manifest "
                            f"{sorted(declared)}")
    for name, spec in declared.items():
        if list(arrays[name].shape) != spec.get("shape") or str(arrays[name].dtype) != spec.get("dtype"):
            raise ArtifactError(f"{where}: array {name!r} is {arrays[name].dtype}"
                                f"{list(arrays[name].shape)}, manifest says "
                                f"{spec.get('dtype')}{spec.get('shape')}")
    return arrays, manifest
