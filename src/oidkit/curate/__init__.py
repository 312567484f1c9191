"""Data curation: operators over batches of records, the recipe runner and its engines.

- ``base``: the operator shapes (Filter, Mapper, GlobalOp), their pydantic configs and the registry.
- ``ops/``: the built-in operators (normalise, language, heuristics, exact/near dedup, decontaminate,
  pii, mix, split, and the embedding-based semantic_dedup / select_diverse).
- ``recipe``: the YAML recipe, ``key=value`` overrides and validation before any work starts.
- ``runner``: stats, rejects, checkpoints/resume and the local engine; ``ray_engine``: the same on Ray.
- ``minhash``, ``semantic``, ``text``: the vectorised cores the operators use.

Python use: ``run_recipe(load_recipe("recipes/default.yaml", ["input=data.jsonl", "output=out"]))``.
"""
