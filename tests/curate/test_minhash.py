"""MinHash + LSH near-dedup: accuracy against exact Jaccard, clustering behaviour, parity with datasketch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from oidkit.curate import minhash
from oidkit.curate.minhash import (
    EMPTY,
    duplicate_clusters,
    estimate_jaccard,
    lsh_params,
    minhash_signatures,
    shingle_hashes,
    shingles,
)

# A long Chinese sentence (no spaces, as Chinese is written) and the same with one character changed.
ZH = (
    "近年来，随着深度学习技术的快速发展，大规模语言模型在自然语言处理领域取得了令人瞩目的成果，"
    "研究人员通过在海量文本数据上进行预训练，再利用高质量的指令数据进行微调，使模型能够理解并执行各种复杂任务，"
    "然而数据中的重复样本会降低训练效率并导致模型记忆特定内容，因此去重是数据清洗流程中不可缺少的一步。"
)
ZH_EDITED = ZH.replace("海量", "大量", 1)
EN = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch and wonders "
    "whether the weather will hold long enough to bring the hay in before the evening storm arrives."
)


def tokens(start: int, stop: int) -> str:
    """Distinct words ``w<start>`` .. ``w<stop-1>``: with ngram=1 their shingle sets overlap exactly."""
    return " ".join(f"w{i}" for i in range(start, stop))


def exact_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


@pytest.mark.parametrize(("shift", "size"), [(10, 100), (50, 150), (100, 200), (180, 200)])
def test_estimate_is_within_minhash_standard_error_of_exact_jaccard(shift: int, size: int) -> None:
    a, b = tokens(0, size), tokens(shift, size + shift)
    truth = (size - shift) / (size + shift)
    signatures = minhash_signatures([a, b], num_perm=256, ngram=1, unit="word")
    # The estimator is a mean of 256 Bernoulli(J) draws: standard error sqrt(J(1-J)/256) <= 0.5/sqrt(256).
    tolerance = 4 * max(math.sqrt(truth * (1 - truth)), 0.25) / math.sqrt(256)
    assert abs(estimate_jaccard(signatures[0], signatures[1]) - truth) <= tolerance


def test_estimate_tracks_exact_jaccard_of_word_5gram_shingles() -> None:
    edited = EN.replace("porch", "barn").replace("evening", "night")
    truth = exact_jaccard(shingles(EN), shingles(edited))
    signatures = minhash_signatures([EN, edited], num_perm=256)
    assert 0.2 < truth < 0.8  # two edits in 36 words: a real middle case
    tolerance = 4 * math.sqrt(truth * (1 - truth)) / math.sqrt(256)
    assert abs(estimate_jaccard(signatures[0], signatures[1]) - truth) <= tolerance


def test_signature_equals_datasketch_minhash_over_the_same_shingle_hashes() -> None:
    hashes = shingle_hashes(EN + " " + ZH)
    reference = MinHash(num_perm=128, seed=1, hashfunc=lambda value: value)
    reference.update_batch(hashes.tolist())
    np.testing.assert_array_equal(minhash_signatures([EN + " " + ZH])[0], reference.hashvalues)


def test_word_shingles_ignore_case_punctuation_and_spacing() -> None:
    assert shingles("Hello,   World! how are you", ngram=2) == {"hello world", "world how", "how are", "are you"}
    same_words = shingle_hashes("hello world how are you")
    np.testing.assert_array_equal(shingle_hashes("HELLO world; how ARE you?"), same_words)


def test_one_hash_per_distinct_shingle() -> None:
    text = EN + " naïve café — “quoted” 東京 " + EN  # non-ASCII words; the repeat adds no new shingle
    assert len(shingle_hashes(text)) == len(shingles(text))
    assert len(shingle_hashes(text, unit="char")) == len(shingles(text, unit="char"))


def test_text_shorter_than_ngram_is_one_shingle_and_empty_text_has_none() -> None:
    assert shingles("just three words") == {"just three words"}
    assert len(shingle_hashes("just three words")) == 1
    assert len(shingle_hashes("")) == 0
    assert len(shingle_hashes("  ?! ")) == 0


def test_signature_does_not_depend_on_the_rest_of_the_batch() -> None:
    alone = minhash_signatures([EN])[0]
    in_batch = minhash_signatures(["", ZH, EN, "short", tokens(0, 3000)])[2]
    np.testing.assert_array_equal(alone, in_batch)


def test_chunks_and_batches_do_not_change_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [EN, tokens(0, 700), "", ZH, tokens(300, 900), "a b", EN + ZH]
    whole = minhash_signatures(texts)
    # Documents now run across many permutation chunks and batches, at every possible alignment.
    monkeypatch.setattr(minhash, "PERMUTATION_CHUNK", 7)
    monkeypatch.setattr(minhash, "BATCH_CHARS", 50)
    np.testing.assert_array_equal(minhash_signatures(texts), whole)


def test_auto_uses_characters_for_chinese_and_words_otherwise() -> None:
    np.testing.assert_array_equal(shingle_hashes(ZH), shingle_hashes(ZH, unit="char"))
    np.testing.assert_array_equal(shingle_hashes(EN), shingle_hashes(EN, unit="word"))


def test_chinese_near_duplicate_clusters_with_character_shingles_only() -> None:
    bands, rows = lsh_params(0.8, 128)
    by_chars = minhash_signatures([ZH, ZH_EDITED], unit="char")
    assert estimate_jaccard(*by_chars) >= 0.8
    assert duplicate_clusters(by_chars, bands=bands, rows=rows, threshold=0.8).tolist() == [0, 0]
    # Unsegmented Chinese has no spaces: the whole text is one "word", so one changed character makes the
    # word shingles disjoint, and word-level dedup cannot see the near duplicate.
    by_words = minhash_signatures([ZH, ZH_EDITED], unit="word")
    assert estimate_jaccard(*by_words) == 0.0
    assert duplicate_clusters(by_words, bands=bands, rows=rows).tolist() == [0, 1]


def test_exact_duplicates_cluster_and_disjoint_texts_do_not() -> None:
    texts = [EN, tokens(0, 300), EN, ZH, tokens(1000, 1300), tokens(0, 300), EN]
    bands, rows = lsh_params(0.8, 128)
    labels = duplicate_clusters(minhash_signatures(texts), bands=bands, rows=rows, threshold=0.8)
    assert labels.tolist() == [0, 1, 0, 3, 4, 1, 0]


def test_empty_documents_never_collide() -> None:
    signatures = minhash_signatures(["", EN, "", "...", EN])
    assert (signatures[[0, 2, 3]] == EMPTY).all()
    assert estimate_jaccard(signatures[0], signatures[2]) == 0.0
    assert duplicate_clusters(signatures, bands=16, rows=8).tolist() == [0, 1, 2, 3, 1]


def test_no_documents_give_no_signatures_and_no_labels() -> None:
    signatures = minhash_signatures([])
    assert signatures.shape == (0, 128)
    assert duplicate_clusters(signatures, bands=9, rows=13).tolist() == []


def test_transitive_near_duplicates_form_one_component() -> None:
    a, b, c = tokens(0, 400), tokens(20, 420), tokens(40, 440)  # J(a,b) = J(b,c) = 0.905, J(a,c) = 0.818
    signatures = minhash_signatures([a, b, c, tokens(5000, 5400)], num_perm=256, ngram=1, unit="word")
    assert estimate_jaccard(signatures[0], signatures[1]) >= 0.86
    assert estimate_jaccard(signatures[1], signatures[2]) >= 0.86
    assert estimate_jaccard(signatures[0], signatures[2]) < 0.86  # a and c alone would not be joined
    # One row per band: every pair sharing any minimum is a candidate, so verification alone decides.
    labels = duplicate_clusters(signatures, bands=256, rows=1, threshold=0.86)
    assert labels.tolist() == [0, 0, 0, 3]


def test_verification_drops_candidates_below_threshold() -> None:
    signatures = minhash_signatures([tokens(0, 100), tokens(50, 150)], num_perm=128, ngram=1, unit="word")
    assert duplicate_clusters(signatures, bands=128, rows=1).tolist() == [0, 0]  # they share some minima
    assert duplicate_clusters(signatures, bands=128, rows=1, threshold=0.8).tolist() == [0, 1]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 0.95])
def test_lsh_params_match_datasketch(threshold: float) -> None:
    assert lsh_params(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_signatures_are_deterministic_for_a_seed() -> None:
    texts = [EN, ZH, tokens(0, 50)]
    np.testing.assert_array_equal(minhash_signatures(texts, seed=7), minhash_signatures(texts, seed=7))
    assert (minhash_signatures(texts, seed=7) != minhash_signatures(texts, seed=8)).any()


def test_two_workers_give_the_same_signatures_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minhash, "BATCH_CHARS", 2000)  # many small batches, so both workers get some
    texts = [tokens(i, i + 40 + i % 97) for i in range(0, 3000, 10)] + [ZH, "", EN]
    np.testing.assert_array_equal(minhash_signatures(texts, workers=2), minhash_signatures(texts, workers=1))


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unit must be one of"):
        shingle_hashes(EN, unit="sentence")
    with pytest.raises(ValueError, match="bands \\* rows <= 8"):
        duplicate_clusters(np.zeros((2, 8), dtype=np.uint32), bands=3, rows=3)


def test_recall_weighted_banding_for_verified_candidates():
    from oidkit.curate.minhash import VERIFIED_FALSE_NEGATIVE_WEIGHT

    assert lsh_params(0.8, 128, 0.5) == (9, 13)  # datasketch's balanced choice
    assert lsh_params(0.8, 128, VERIFIED_FALSE_NEGATIVE_WEIGHT) == (16, 8)
    bands, rows = lsh_params(0.8, 128, VERIFIED_FALSE_NEGATIVE_WEIGHT)
    assert 1 - (1 - 0.85**rows) ** bands > 1 - (1 - 0.85**13) ** 9  # more pairs just above 0.8 become candidates
