"""Semantic near-duplicates and diverse selection on vectors with known cosines, and the real encoder."""

from __future__ import annotations

import numpy as np
import pytest

from oidkit.curate.semantic import embed, k_center_greedy, score_first_diverse, semantic_duplicates


def unit(*rows):
    array = np.array(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def at_angle(cos: float) -> list[float]:
    return [cos, float(np.sqrt(1 - cos**2)), 0.0]


def test_pairs_above_threshold_fold_into_the_first_row():
    # row 2 is at 0.90 from row 0 in another plane, so at 0.90 * 0.97 from row 1: no chain
    vectors = unit([1, 0, 0], at_angle(0.97), [0.90, 0, float(np.sqrt(1 - 0.81))], [0, 1, 0])
    representative, similarity = semantic_duplicates(vectors, threshold=0.95, block=2)
    assert representative.tolist() == [0, 0, 2, 3]
    assert similarity[1] == pytest.approx(0.97, abs=1e-5) and similarity[3] == 0


def test_chains_are_one_component_and_priority_picks_the_representative():
    # a~b (0.98) and b~c (0.98) but a, c at 0.92: one component with the threshold at 0.95
    a = [1.0, 0.0, 0.0]
    b = at_angle(0.98)
    angle = 2 * np.arccos(0.98)
    c = [float(np.cos(angle)), float(np.sin(angle)), 0.0]
    vectors = unit(a, b, c)
    assert semantic_duplicates(vectors, 0.95)[0].tolist() == [0, 0, 0]
    assert semantic_duplicates(vectors, 0.95, priority=np.array([1, 5, 3]))[0].tolist() == [1, 1, 1]


def test_k_center_covers_every_cluster():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    points = np.concatenate([c + 0.05 * rng.standard_normal((25, 16)).astype(np.float32) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    picked = k_center_greedy(points, 4)
    assert sorted(i // 25 for i in picked) == [0, 1, 2, 3]


def test_score_first_skips_records_close_to_better_ones():
    vectors = unit([1, 0, 0], at_angle(0.99), [0, 1, 0], [0, 0, 1])
    scores = np.array([5.0, 4.0, 3.0, 1.0])
    assert score_first_diverse(vectors, scores, n=3, min_distance=0.05) == [0, 2, 3]
    assert score_first_diverse(vectors, scores, n=2, min_distance=0.0) == [0, 1]


@pytest.mark.real
def test_packaged_encoder_finds_paraphrases():
    texts = ["How do I bake a loaf of bread at home?", "What is the way to bake bread at home?",
             "Explain the theory of general relativity."]
    vectors = embed(texts)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.8 > vectors[0] @ vectors[2]


@pytest.mark.real
def test_semantic_operators_in_a_recipe_account_for_every_record(tmp_path):
    from collections import Counter

    from oidkit.curate.recipe import load_recipe
    from oidkit.curate.runner import run_recipe
    from oidkit.io import read_jsonl, write_jsonl
    from oidkit.records import make_record

    questions = ["How do I bake a loaf of bread at home?", "What is the way to bake bread at home?",
                 "Explain the theory of general relativity.", "Write a haiku about autumn leaves.",
                 "Give me three tips for learning to play the guitar."]
    records = [make_record([{"role": "user", "content": q}, {"role": "assistant", "content": "An answer."}],
                           id=f"r{i}", meta={"score": float(i)}) for i, q in enumerate(questions)]
    write_jsonl(tmp_path / "in.jsonl", records)
    steps = [{"op": "semantic_dedup", "threshold": 0.8, "keep": "score"},
             {"op": "select_diverse", "n": 3, "method": "score_first", "min_distance": 0.1}]
    stats = run_recipe(load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(tmp_path / "out"),
                                         "steps": steps}))
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "kept.jsonl")]
    rejects = list(read_jsonl(tmp_path / "out" / "rejects.jsonl"))
    assert Counter(kept) + Counter(r["record"]["id"] for r in rejects) == Counter(r["id"] for r in records)
    duplicate = next(r for r in rejects if r["reason"] == "semantic_duplicate")
    assert duplicate["record"]["id"] == "r0" and duplicate["duplicate_of"] == "r1"  # r1 has the higher score
    assert sorted(kept) == ["r2", "r3", "r4"]  # the three best-scored of the four distinct ones
    assert [s["dropped"] for s in stats["operators"]] == [1, 1]
