"""Instruction tuning: chat templates, tokenisation, packing, the training loop, checkpoints."""
