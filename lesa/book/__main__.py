"""`python -m lesa.book`: lesa.book.run's command line."""
import sys

from ..core.store import run_main
from .common import BookError
from .run import main

sys.exit(run_main(main, user_errors=(BookError,)))
