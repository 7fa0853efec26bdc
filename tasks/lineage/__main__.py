"""`python -m tasks.lineage show|verify PATH`: a model's or submission's lineage, shown or checked."""
import sys

from tasks.core.errors import run_stage
from tasks.lineage.record import main

run_stage("lineage", lambda: sys.exit(main()))
