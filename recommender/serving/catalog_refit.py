"""Refitting the live catalog's vocabulary in another process, off every request's path.

Without a trained model the catalog's words come from the catalog itself (TF-IDF + SVD
fit on every paper), refit whenever the catalog has doubled so new words count. That fit
is seconds of Python (tokenising every paper, the SVD): 4.4 s at 3,800 papers. Done on the
POST /papers that crossed the line, it held that request for seconds, and, worse, it held
the GIL: reads on the server's other threads waited on it (the soak's read p99 during
1,000-paper batches: 338 ms against a 100 ms target).

So the fit runs in a child process: `python -m recommender.serving.catalog_refit`, given
the texts as a JSON file and answering with the encoder and vectors as an .npz (arrays, no
pickle), one refit at a time per catalog. Until it ends the catalog keeps growing with the
old vocabulary (new papers are encoded at once and are recommendable in the next list);
when it ends, the catalog is rebuilt from its answer plus the papers stored since the fit
began (live.py). Starting the child costs ~1 s of another core's time; a refit happens
each time the catalog doubles, so that is paid a handful of times in a catalog's life.

Small catalogs are refit in process: a fit of a few hundred papers costs less than
starting the child, and tests and a fresh install see the new words at once.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from recommender.model.content import ContentEncoder

log = logging.getLogger(__name__)

# Catalogs below this many papers are refit in the calling thread (~0.3 s at 1,000).
IN_PROCESS_BELOW = 1_000

# A text for a catalog without one usable word, so the fit has a vocabulary at all.
PLACEHOLDER = "an empty catalog has no vocabulary yet"

# The project root, from which the child imports this package.
_ROOT = Path(__file__).resolve().parents[2]
# A refit taking longer than this is given up (the catalog keeps its vocabulary).
CHILD_TIMEOUT_S = 900


def fit_catalog(texts: list[str]) -> tuple[ContentEncoder, np.ndarray]:
    """The catalog's encoder fit on `texts`, and their vectors (one vectorisation: the fit's
    own TF-IDF rows). A catalog with no usable word (a first paper titled "t") is fit with
    the placeholder too, rather than fail every request until a real paper comes."""
    try:
        encoder, X = ContentEncoder.fit_transform(texts or [PLACEHOLDER])
    except ValueError:
        encoder, X = ContentEncoder.fit_transform(texts + [PLACEHOLDER])
    return encoder, encoder.encode_tfidf(X[:len(texts)])


def fit_elsewhere(texts: list[str]) -> tuple[ContentEncoder, np.ndarray]:
    """fit_catalog(texts), in a child process for a large catalog. If the child fails
    (cannot start, dies, times out) the fit runs in this thread after all."""
    if len(texts) >= IN_PROCESS_BELOW:
        try:
            with tempfile.TemporaryDirectory(prefix="paperrec-refit-") as folder:
                given, answer = Path(folder) / "texts.json", Path(folder) / "fit.npz"
                given.write_text(json.dumps(texts))
                subprocess.run([sys.executable, "-m", __name__, str(given), str(answer)],
                               cwd=_ROOT, check=True, timeout=CHILD_TIMEOUT_S,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
                with np.load(answer) as arrays:
                    encoder = ContentEncoder.from_arrays(arrays)
                    vectors = np.asarray(arrays["vectors"], np.float32)
            if vectors.shape == (len(texts), encoder.dim):
                return encoder, vectors
            log.warning("catalog refit answered %s vectors for %d papers; refitting here",
                        vectors.shape, len(texts))
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            log.warning("catalog refit in a child process failed (%r); refitting here", exc)
    return fit_catalog(texts)


def main(argv: list[str]) -> None:
    """The child: texts from argv[0] (JSON), the fit to argv[1] (.npz)."""
    texts = json.loads(Path(argv[0]).read_text())
    encoder, vectors = fit_catalog(texts)
    with open(argv[1], "wb") as out:
        np.savez(out, vectors=vectors, **encoder.to_arrays())


if __name__ == "__main__":
    main(sys.argv[1:])
