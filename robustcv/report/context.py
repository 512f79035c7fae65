"""What every section builder gets: the runs, where its figures go, and how it names a curve or a
column when several runs are compared."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustcv.report.loading import RunData

NOT_MEASURED = "not measured"


@dataclass
class Context:
    """What every section builder needs: the runs and where figures go."""

    runs: list[RunData]
    out_dir: Path

    def figure_path(self, name: str) -> Path:
        return self.out_dir / name

    def label(self, run: str, *parts: str) -> str:
        """``parts`` joined by `` / ``, led by the run's name only when several runs are compared."""
        return " / ".join(([run] if len(self.runs) > 1 else []) + list(parts))
