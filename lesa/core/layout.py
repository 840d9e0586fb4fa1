"""Where every result lives: one object instead of paths built by hand.

    R = Results("cpu")                 # results/cpu/
    R.chapter("03_expansion")          # a notebook's tables, figures and manifest.json
    R.cpt("lesa-p0"), R.cpt()          # one CPT run's logs and summary.json / every run's folder
    R.downstream("lesa-p0")            # a run's evaluation after training
    R.verdicts("04_cpt_curves")        # a chapter's verdict records (R.verdicts(): their folder)
    R.executed(), R.scale("smollm2-135m"), R.file("book_run.json")

A profile's folder holds one folder per notebook (its own outputs), cpt/ and downstream/ (written by
lesa.study.cpt), verdicts/ (one file per chapter), executed/ (the finished notebooks the book shows), scale/
(the scale ladder, one file per model), beyond/ (step-0 diagnostics) and the run records (book_run.json,
replicate_run.json, scoreboard.json). ``root`` is results/ of the checkout unless a test gives another.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import PROJECT_ROOT

RESULTS_ROOT = PROJECT_ROOT / "results"
# `make replicate`'s notebook stages, by the folders they write: growth comes before continual pre-training
# (CPT needs notebook 3's median predictor seed), the training chapters after it. Here, not in lesa.book, so
# that lesa.bench (a lower layer) can read a replicate run's record.
GROWTH_NOTEBOOKS = ["01_svd_evidence", "02_predictor", "03_expansion"]
TRAINING_NOTEBOOKS = ["04_cpt_curves", "05_downstream", "06_beyond"]


@dataclass(frozen=True)
class Results:
    profile: str
    root: Path | str | None = None      # None: RESULTS_ROOT, read when used (a test may point it elsewhere)

    def __post_init__(self):
        if not isinstance(self.profile, str) or not self.profile or "/" in self.profile:
            raise ValueError(f"Results: a profile is a plain name such as 'cpu' (got {self.profile!r})")

    @property
    def dir(self) -> Path:
        return Path(self.root if self.root is not None else RESULTS_ROOT) / self.profile

    def file(self, name: str) -> Path:
        """A record of the whole profile (book_run.json, replicate_run.json, scoreboard.json)."""
        return self.dir / name

    def chapter(self, notebook: str) -> Path:
        return self.dir / notebook

    def cpt(self, run: str | None = None) -> Path:
        return self.dir / "cpt" if run is None else self.dir / "cpt" / run

    def downstream(self, run: str | None = None) -> Path:
        return self.dir / "downstream" if run is None else self.dir / "downstream" / run

    def verdicts(self, chapter: str | None = None) -> Path:
        return self.dir / "verdicts" if chapter is None else self.dir / "verdicts" / f"{chapter}.json"

    def executed(self) -> Path:
        return self.dir / "executed"

    def scale(self, model: str | None = None) -> Path:
        return self.dir / "scale" if model is None else self.dir / "scale" / f"{model}.json"

    def beyond(self, name: str | None = None) -> Path:
        return self.dir / "beyond" if name is None else self.dir / "beyond" / name
