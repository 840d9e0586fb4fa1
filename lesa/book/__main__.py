"""`python -m lesa.book`: lesa.book.run's command line."""
import sys

from ..core.store import run_main
from .run import main, BookError

sys.exit(run_main(main, user_errors=(BookError,)))
