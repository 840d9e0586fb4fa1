"""`python -m lesa.train`: lesa.train.trainer's command line."""
import sys

from ..core.store import run_main
from .trainer import main

sys.exit(run_main(main))
