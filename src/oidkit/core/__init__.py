"""The shared layer under the stages: chat encoding, language, config loading, statistics, progress, run folders.

Stages (curate, report, synth, train, evaluate, serve, review, viz) import io, models and this layer, never each
other; this layer imports only io and the base modules (records, errors, text). pyproject.toml states the rule
(import-linter contracts) and `make test` checks it.
"""
