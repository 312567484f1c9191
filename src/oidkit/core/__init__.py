"""The shared layer under the stages: chat encoding, language, config loading, statistics, progress, run folders.

Stages (curate, report, synth, train, evaluate, serve, review, viz) import models, io and this layer, never each
other; this layer sits under io (ingest uses the language rule) and imports only the base modules (records,
errors, text). pyproject.toml states the rules (import-linter contracts), `make test` checks them and
docs/architecture.md draws them.
"""
