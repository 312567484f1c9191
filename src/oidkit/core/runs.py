"""A run's metrics: a CSV file always, TensorBoard when installed, a loss-curve PNG at the end.

Shared by ``oid train``, ``oid pretrain`` (which write it) and ``oid viz curves`` (which reads it)."""

from __future__ import annotations

import csv
from pathlib import Path

from oidkit.atomic import atomic_path


class MetricsLog:
    """Write rows of metrics (train and eval) to ``RUN/metrics.csv`` and, if available, TensorBoard.

    ``resume_step``: keep the rows up to that step from an earlier run (a resumed run replays the steps
    after its checkpoint, so their old rows go).
    """

    FIELDS = ("step", "split", "loss", "lr", "tokens", "tokens_per_s", "grad_norm", "elapsed_s")

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in _raw_rows(self.path) if float(r["step"]) <= resume_step] \
            if resume_step is not None and self.path.exists() else []
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.DictWriter(self._file, fieldnames=self.FIELDS, extrasaction="ignore")
        self._writer.writeheader()
        self._writer.writerows(kept)  # as written: a resumed run's file reads like an uninterrupted one
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tb = None

    def log(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for key in ("loss", "lr", "tokens_per_s", "grad_norm"):
                if row.get(key) is not None:
                    self._tb.add_scalar(f"{row['split']}/{key}", row[key], row["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _raw_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a ``metrics.csv`` with numbers parsed."""
    return [{k: (float(v) if v not in ("", None) and k != "split" else v or None) for k, v in row.items()}
            for row in _raw_rows(Path(path))]


def smoothed(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled towards 0."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def plot_loss(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Train and eval loss against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_csv)
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]
    evals = [(r["step"], r["loss"]) for r in rows if r["split"] == "eval"]
    if train:
        ax.plot(*zip(*train, strict=True), "-", alpha=0.35, label="train loss")
        ax.plot([s for s, _ in train], smoothed([v for _, v in train]), "-", label="train loss (smoothed)")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats / target token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as temp:
        fig.savefig(temp, dpi=120, format="png")
    plt.close(fig)
    return Path(out_png)
