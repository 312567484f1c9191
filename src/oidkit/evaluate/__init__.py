"""Evaluation: perplexity, generation metrics, multiple choice, LLM-as-judge, comparisons."""
