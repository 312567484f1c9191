"""Code every stage may use: small, dependency-free helpers (statistics, ...)."""
