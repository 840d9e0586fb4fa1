"""`python -m lesa.bench`: lesa.bench.run's command line."""
import sys

from ..core.store import run_main
from .run import main

sys.exit(run_main(main))
