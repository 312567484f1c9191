"""Near-duplicate detection: MinHash signatures and LSH banding, vectorised across documents with numpy.

The pipeline, each step over a whole batch of documents at once (no Python loop per shingle, none per
document in the hot path):

1. ``shingle_hashes``: lowercase, cut into words (runs of ASCII letters, digits, ``_`` or any non-ASCII
   character) or characters (whitespace dropped), hash every n-gram window to 32 bits.
2. ``minhash_signatures``: apply ``num_perm`` affine permutations to every shingle hash of the batch in
   one flat array and take per-document minima with ``np.minimum.reduceat`` over document offsets.
   The permutations are datasketch's default scheme ("affine32", datasketch >= 2.0): the hash is
   pre-mixed with the MurmurHash3 finalizer, then ``a * h + b mod 2**32`` with odd ``a``, which is a
   bijection, so, unlike the older ``(a * h + b) mod (2**61 - 1)`` truncated to 32 bits, it cannot
   inflate similarities of large sets (datasketch issue 212). Same seed, same ``a``/``b`` as
   datasketch: given the same 32-bit shingle hashes our signature equals ``MinHash(seed=seed)``'s.
3. ``duplicate_clusters``: hash each band of ``rows`` values to one uint64 key, group equal keys by
   sorting, take the candidate pairs, optionally keep only pairs whose estimated Jaccard reaches the
   threshold, and label connected components by their smallest row index.

Empty documents (no shingle at all) get the signature of a minimum over nothing: every value is
``EMPTY`` (2**32 - 1), as datasketch's empty MinHash. ``duplicate_clusters`` never pairs such rows and
``estimate_jaccard`` gives 0.0 for them, so empty documents never collide with anything, each other included.
"""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache, partial

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

EMPTY = np.uint32(0xFFFFFFFF)
UNITS = ("auto", "word", "char")

# "auto" picks character shingles when at least this share of a text's non-space characters are CJK:
# Chinese/Japanese are written without spaces, so "words" would be whole clauses, and one CJK character
# carries about as much as one English word, so a text that is 30% CJK by characters is mostly CJK by content.
CJK_SHARE_FOR_CHARS = 0.3
# Batches of about this many characters keep every temporary array of a batch around a megabyte: large
# fresh arrays cost more in page faults than the arithmetic on them, small ones are reused by malloc.
BATCH_CHARS = 1 << 18
# Shingles per permutation chunk: (num_perm x chunk) uint32 values, 4 MB at 128 permutations, reused per chunk.
PERMUTATION_CHUNK = 8192
# Band-key groups larger than this are joined as a star (each member to the first) instead of all pairs,
# which would be quadratic; identical signatures were already merged before banding, so such groups are rare.
MAX_GROUP_FOR_ALL_PAIRS = 1000

_MASK64 = (1 << 64) - 1
_POLY_BASE = 0x100000001B3  # odd, so invertible modulo 2**64 (needed to shift word hashes to position 0)
_POLY_BASE_INVERSE = pow(_POLY_BASE, -1, 1 << 64)

# Bytes that belong to words in UTF-8: ASCII letters, digits, "_" and every byte of a multi-byte character,
# so a byte run is exactly a run of the characters matched by _WORD_PATTERN below.
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[[*range(ord("0"), ord("9") + 1), *range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1)]] = True
_WORD_BYTE[ord("_")] = True
_WORD_BYTE[0x80:] = True
_WORD_PATTERN = re.compile(r"[0-9A-Za-z_\u0080-\U0010ffff]+")
# UTF-8 lead bytes of three-byte characters U+3000..U+DFFF: CJK punctuation, kana, CJK ideographs, Hangul.
_CJK_LEAD_BYTE = np.zeros(256, dtype=bool)
_CJK_LEAD_BYTE[0xE3:0xEE] = True
# Bytes that start a character and are not ASCII whitespace: the denominator of the CJK share.
_COUNTED_BYTE = np.ones(256, dtype=bool)
_COUNTED_BYTE[0x80:0xC0] = False
_COUNTED_BYTE[[ord(c) for c in " \t\n\r\f\v"]] = False


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: an avalanching bijection (uint64 arithmetic wraps, as intended)."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, the pre-mix datasketch applies before its affine permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def _odd_weights(count: int, salt: int) -> np.ndarray:
    """``count`` fixed pseudo-random odd uint64 multipliers."""
    return _fmix64(np.arange(salt, salt + count, dtype=np.uint64)) | np.uint64(1)


@lru_cache(maxsize=4)
def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``base**i`` and ``base**-i`` modulo 2**64 for i < length (cached: batches have similar sizes)."""
    tables = []
    for base in (_POLY_BASE, _POLY_BASE_INVERSE):
        table = np.ones(length, dtype=np.uint64)
        done, step = 1, base
        while done < length:  # doubling: table[done:2*done] = table[:done] * base**done
            chunk = min(done, length - done)
            np.multiply(table[:chunk], np.uint64(step), out=table[done : done + chunk])
            done, step = done + chunk, step * step & _MASK64
        tables.append(table)
    return tables[0], tables[1]


def _word_token_hashes(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hash of every word of every UTF-8 document, and the number of words per document.

    A word's hash is the polynomial ``sum(byte_j * base**j)`` over its bytes, computed for all words at
    once from one prefix sum: the difference of two prefix sums, multiplied by ``base**-start`` so the
    hash does not depend on where the word sits in the batch.
    """
    joined = b"\n".join(encoded)  # "\n" is not a word byte: words never run across documents
    data = np.frombuffer(joined, dtype=np.uint8)
    powers, inverses = _powers(max(1 << len(data).bit_length(), BATCH_CHARS * 2))
    prefix = np.empty(len(data) + 1, dtype=np.uint64)  # in place: fresh temporaries cost more than the math
    prefix[0] = 0
    prefix[1:] = data
    prefix[1:] *= powers[: len(data)]
    np.cumsum(prefix, out=prefix)
    is_word = np.zeros(len(data) + 2, dtype=bool)  # padded with a non-word byte on both sides
    is_word[1:-1] = _WORD_BYTE[data]
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])  # alternately the start and the end of a word
    starts, ends = edges[0::2], edges[1::2]
    hashes = _fmix64((prefix[ends] - prefix[starts]) * inverses[starts])
    document_ends = np.cumsum([len(e) + 1 for e in encoded], dtype=np.int64)  # +1: the "\n" after each document
    counts = np.diff(np.searchsorted(starts, document_ends), prepend=0)
    return hashes, counts


def _char_token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hash of every non-space character of every (lowercased) document, and the count per document."""
    squeezed = ["".join(text.split()) for text in texts]
    code_points = np.frombuffer("".join(squeezed).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return _fmix64(code_points.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)), np.array(
        [len(s) for s in squeezed], dtype=np.int64
    )


def _ngram_hashes(tokens: np.ndarray, counts: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """uint32 hash of every window of ``ngram`` tokens inside each document, and the windows per document.

    A document with fewer than ``ngram`` tokens (but at least one) is a single shingle of all its tokens.
    """
    total = len(tokens)
    starts = np.cumsum(counts) - counts
    windows = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    weights = _odd_weights(ngram, salt=1)
    # Every position first gets the window that starts there, ignoring document ends; the windows that
    # cross one are never read below, except the single window of a short document, recomputed after.
    combined = np.zeros(total, dtype=np.uint64)
    product = np.empty(total, dtype=np.uint64)
    for offset, weight in enumerate(weights):
        size = max(total - offset, 0)
        np.multiply(tokens[offset:], weight, out=product[:size])
        combined[:size] += product[:size]
    short = np.flatnonzero((counts > 0) & (counts < ngram))
    if len(short):
        combined[starts[short]] = sum(
            np.where(offset < counts[short], tokens[np.minimum(starts[short] + offset, total - 1)], 0) * weight
            for offset, weight in enumerate(weights)
        )
    window_start = np.arange(windows.sum()) + np.repeat(starts - (np.cumsum(windows) - windows), windows)
    return (_fmix64(combined[window_start]) >> np.uint64(32)).astype(np.uint32), windows


def _resolve_units(lowered: list[str], encoded: list[bytes], unit: str) -> np.ndarray:
    """Per document: True for character shingles, False for word shingles."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if unit != "auto":
        return np.full(len(lowered), unit == "char")
    chars = np.zeros(len(lowered), dtype=bool)
    # Only texts with non-ASCII characters can be CJK; str.isascii is a fast C check.
    rows = [i for i, text in enumerate(lowered) if not text.isascii()]
    data = np.frombuffer(b"".join(encoded[i] for i in rows), dtype=np.uint8)
    bounds = np.cumsum([0] + [len(encoded[i]) for i in rows])
    cjk = np.concatenate([[0], np.cumsum(_CJK_LEAD_BYTE[data])])[bounds]
    counted = np.concatenate([[0], np.cumsum(_COUNTED_BYTE[data])])[bounds]
    chars[rows] = np.diff(cjk) >= CJK_SHARE_FOR_CHARS * np.maximum(np.diff(counted), 1)
    return chars


def _batch_shingles(texts: list[str], ngram: int, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shingle hashes of a batch as one flat array, the shingles per document, and the document order.

    Documents are regrouped by unit (word documents first, then character documents); ``order`` gives
    the original index of each regrouped document.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1; got {ngram}")
    lowered = [text.lower() for text in texts]
    encoded = [text.encode("utf-8", "surrogatepass") for text in lowered]
    chars = _resolve_units(lowered, encoded, unit)
    word_rows, char_rows = np.flatnonzero(~chars), np.flatnonzero(chars)
    word_hashes, word_counts = _ngram_hashes(*_word_token_hashes([encoded[i] for i in word_rows]), ngram)
    char_hashes, char_counts = _ngram_hashes(*_char_token_hashes([lowered[i] for i in char_rows]), ngram)
    return (
        np.concatenate([word_hashes, char_hashes]),
        np.concatenate([word_counts, char_counts]),
        np.concatenate([word_rows, char_rows]),
    )


def shingle_hashes(text: str, *, ngram: int = 5, unit: str = "auto") -> np.ndarray:
    """Sorted uint32 hashes of the distinct shingles of ``text``.

    ``unit="word"``: n-grams of words of the lowercased text (a word is a run of ASCII letters, digits,
    ``_`` or non-ASCII characters, so punctuation and spacing changes do not matter). ``unit="char"``:
    n-grams of the characters of the lowercased text with whitespace removed, for scripts written without
    spaces. ``unit="auto"`` (default): characters when at least 30% of the non-space characters are CJK,
    else words. ``ngram=5`` (default) is the usual choice for web and chat text (datatrove's MinHash dedup,
    RefinedWeb): short enough that one edit changes few shingles, long enough that unrelated texts share
    almost none. A text shorter than ``ngram`` units is one shingle; an empty one has none.
    """
    hashes, _, _ = _batch_shingles([text], ngram, unit)
    return np.unique(hashes)


def shingles(text: str, *, ngram: int = 5, unit: str = "auto") -> set[str]:
    """The distinct shingles of ``text`` as strings, exactly the units ``shingle_hashes`` hashes.

    Slow (one Python string per shingle): for reading and for feeding other libraries (the benchmark
    gives these to datasketch), not for the hot path.
    """
    lowered = text.lower()
    (chars,) = _resolve_units([lowered], [lowered.encode("utf-8", "surrogatepass")], unit)
    tokens = list("".join(lowered.split())) if chars else _WORD_PATTERN.findall(lowered)
    glue = "" if chars else " "
    if 0 < len(tokens) < ngram:
        return {glue.join(tokens)}
    return {glue.join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters for ``seed``: odd ``a`` and any ``b``, uint32."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _signatures_from_hashes(hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Per-document MinHash over a flat array of uint32 shingle hashes; ``counts`` shingles per document."""
    a, b = _permutations(num_perm, seed)
    signatures = np.full((len(counts), num_perm), EMPTY, dtype=np.uint32)
    rows = np.flatnonzero(counts)  # empty documents keep the EMPTY signature
    starts = np.cumsum(counts[rows]) - counts[rows]
    mixed = _fmix32(hashes)
    a, b = a[:, None], b[:, None]
    # (num_perm, chunk): reduceat along the last, contiguous axis is ~20x faster than along the first.
    permuted = np.empty((num_perm, PERMUTATION_CHUNK), dtype=np.uint32)  # reused: no page faults per chunk
    for low in range(0, len(mixed), PERMUTATION_CHUNK):
        high = min(low + PERMUTATION_CHUNK, len(mixed))
        first = np.searchsorted(starts, low, "right") - 1  # the document running into this chunk
        last = np.searchsorted(starts, high, "left")
        chunk = permuted[:, : high - low]
        np.multiply(a, mixed[low:high], out=chunk)
        chunk += b
        minima = np.minimum.reduceat(chunk, np.maximum(starts[first:last] - low, 0), axis=1).T
        chunk_rows = rows[first:last]
        signatures[chunk_rows] = np.minimum(signatures[chunk_rows], minima)
    return signatures


def _batch_signatures(texts: list[str], num_perm: int, ngram: int, unit: str, seed: int) -> np.ndarray:
    hashes, counts, order = _batch_shingles(texts, ngram, unit)
    signatures = np.empty((len(texts), num_perm), dtype=np.uint32)
    signatures[order] = _signatures_from_hashes(hashes, counts, num_perm, seed)
    return signatures


def _batch_bounds(texts: list[str], max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive slices of ``texts`` of about ``max_chars`` characters, at least one text each."""
    bounds, start, size = [], 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= max_chars:
            bounds.append((start, i + 1))
            start, size = i + 1, 0
    if start < len(texts):
        bounds.append((start, len(texts)))
    return bounds


# The texts of the running minhash_signatures call, inherited by forked workers: no pickling of the corpus.
_texts_for_workers: list[str] = []


def _worker_batch(bounds: tuple[int, int], num_perm: int, ngram: int, unit: str, seed: int) -> np.ndarray:
    return _batch_signatures(_texts_for_workers[bounds[0] : bounds[1]], num_perm, ngram, unit, seed)


def minhash_signatures(
    texts: list[str], *, num_perm: int = 128, ngram: int = 5, unit: str = "auto", seed: int = 1, workers: int = 1
) -> np.ndarray:
    """MinHash signatures, shape ``(len(texts), num_perm)``, uint32; see the module docstring.

    ``workers > 1`` computes batches in that many forked processes (they inherit ``texts``, only the
    signatures travel back); the result is identical to ``workers=1``. An empty document (no shingle)
    gets the all-``EMPTY`` signature, which never collides.
    """
    global _texts_for_workers
    texts = list(texts)
    options = {"num_perm": num_perm, "ngram": ngram, "unit": unit, "seed": seed}
    bounds = _batch_bounds(texts, BATCH_CHARS)
    if workers > 1 and len(bounds) > 1:
        _texts_for_workers = texts
        # About 4 tasks per worker: the pool feeds tasks from a parent thread, which on a busy machine
        # wakes up late, so many small tasks leave workers waiting; 4 keeps the last one short.
        chunksize = max(1, len(bounds) // (4 * workers))
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(partial(_worker_batch, **options), bounds, chunksize=chunksize))
        finally:
            _texts_for_workers = []
    else:
        parts = [_batch_signatures(texts[start:end], **options) for start, end in bounds]
    return np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)


# Candidates are checked against the threshold (``duplicate_clusters(threshold=...)``), so banding is tuned for
# recall: at threshold 0.8 / 128 permutations this picks 16 bands x 8 rows, which measured 0.975 agreement with
# exact Jaccard on the real ShareGPT data against 0.970 for datasketch's balanced 9 x 13 (docs/minhash.md).
VERIFIED_FALSE_NEGATIVE_WEIGHT = 0.95


def lsh_params(threshold: float, num_perm: int, false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive + false negative probability mass.

    With the default weights (0.5/0.5) this is datasketch's ``_optimal_param``, vectorised: both integrands
    are polynomials of degree ``bands * rows <= num_perm``, so Gauss-Legendre quadrature with ``num_perm``
    nodes is exact. When candidate pairs are verified against the threshold afterwards, false positives
    only cost a comparison while false negatives lose duplicates, so a higher ``false_negative_weight`` fits.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}")
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands, rows = (np.array(column, dtype=float)[:, None] for column in zip(*pairs, strict=True))
    nodes, weights = np.polynomial.legendre.leggauss(num_perm)

    def integral(low: float, high: float, false_positive: bool) -> np.ndarray:
        s = low + (high - low) * (nodes + 1) / 2
        collide = 1 - (1 - s**rows) ** bands  # probability that a pair at similarity s shares a band
        return ((collide if false_positive else 1 - collide) * weights).sum(axis=1) * (high - low) / 2

    error = ((1 - false_negative_weight) * integral(0.0, threshold, True)
             + false_negative_weight * integral(threshold, 1.0, False))
    return pairs[int(np.argmin(error))]


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal signature values; 0.0 when either document was empty."""
    if (sig_a == EMPTY).all() or (sig_b == EMPTY).all():
        return 0.0
    return float(np.mean(sig_a == sig_b))


def _row_keys(values: np.ndarray, salt: int) -> np.ndarray:
    """One uint64 hash per row of a (n, k) unsigned integer array: a polynomial with odd weights, then mixed."""
    keys = np.zeros(len(values), dtype=np.uint64)
    for column, weight in zip(values.T, _odd_weights(values.shape[1], salt), strict=True):
        keys += column
        keys *= weight
    return _fmix64(keys)


def _same_key_pairs(keys: np.ndarray, star_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (left < right in group order) of rows with equal keys.

    All pairs per group, or a star from the group's first row when ``star_only`` or when the group is
    larger than ``MAX_GROUP_FOR_ALL_PAIRS`` (a star already connects the component).
    """
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    new_group = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
    group_start = np.flatnonzero(new_group)
    sizes = np.diff(np.append(group_start, len(keys)))
    start_of = np.repeat(group_start, sizes)
    size_of = np.repeat(sizes, sizes)
    position = np.arange(len(keys))
    star = star_only | (size_of > MAX_GROUP_FOR_ALL_PAIRS)
    partners = np.where(star, np.where(position == start_of, size_of - 1, 0), start_of + size_of - position - 1)
    left = np.repeat(position, partners)
    first_of_left = np.repeat(np.cumsum(partners) - partners, partners)
    step = np.arange(len(left)) - first_of_left + 1
    right = left + step
    return order[left], order[right]


def duplicate_clusters(
    signatures: np.ndarray, *, bands: int, rows: int, threshold: float | None = None
) -> np.ndarray:
    """Label each row with the smallest row index of its near-duplicate component (singletons: itself).

    Rows are candidates when all ``rows`` values of one of ``bands`` bands are equal. With ``threshold``,
    a candidate pair is kept only if its estimated Jaccard is at least ``threshold``; identical signatures
    are always kept. All-``EMPTY`` rows (empty documents) are never paired.
    """
    count, num_perm = signatures.shape
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ValueError(f"need bands >= 1, rows >= 1 and bands * rows <= {num_perm} (the signature length); "
                         f"got bands={bands}, rows={rows}")
    filled = np.flatnonzero(~(signatures == EMPTY).all(axis=1))
    band_keys = np.stack(
        [_row_keys(signatures[filled, band * rows : (band + 1) * rows], salt=band + 1) for band in range(bands)]
        + [_row_keys(signatures[filled, bands * rows :], salt=0)],  # the values no band uses
        axis=1,
    )
    # Rows with identical signatures are joined first; banding then looks at one row per distinct signature.
    whole = _row_keys(band_keys, salt=bands + 1)
    same_left, same_right = _same_key_pairs(whole, star_only=True)
    _, representative = np.unique(whole, return_index=True)
    lefts, rights = [], []
    for band in range(bands):
        left, right = _same_key_pairs(band_keys[representative, band], star_only=threshold is None)
        lefts.append(representative[left])
        rights.append(representative[right])
    left, right = np.concatenate(lefts), np.concatenate(rights)
    if threshold is not None and len(left):
        pair_keys = np.unique(np.minimum(left, right) * len(filled) + np.maximum(left, right))
        left, right = pair_keys // len(filled), pair_keys % len(filled)
        similar = np.concatenate([
            (signatures[filled[left[i : i + 65536]]] == signatures[filled[right[i : i + 65536]]]).mean(axis=1)
            for i in range(0, len(left), 65536)
        ]) >= threshold
        left, right = left[similar], right[similar]
    left = filled[np.concatenate([same_left, left])]
    right = filled[np.concatenate([same_right, right])]
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    _, first_row = np.unique(component, return_index=True)  # components are numbered 0..k-1
    return first_row[component]
