"""oidkit: open instruction datasets to a tuned, evaluated, served model."""

__version__ = "0.1.0"
