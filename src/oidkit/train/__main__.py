"""``python -m oidkit.train CONFIG [key=value ...] [--resume]``: the entry point torchrun starts per process."""

from __future__ import annotations

import argparse

from oidkit.train.config import load_train_config
from oidkit.train.run import run_training


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m oidkit.train")
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. optim.lr=1e-4")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    run_training(load_train_config(args.config, args.overrides), resume=args.resume)


if __name__ == "__main__":
    main()
