"""Evaluation: perplexity, generation metrics, multiple choice, LLM-as-judge, comparisons."""

# The task types ``evaluate.tasks`` reads (detected from a file's fields, or forced). Here, not in tasks.py, so
# that ``oid eval --task`` builds its choices from them without importing the readers (pyarrow) at start-up.
TASKS = ("choice", "gsm8k", "generation", "records")
