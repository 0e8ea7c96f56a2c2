"""Run by tests/test_eval_runner.py: `sas-trl eval ARGS`, which after its first MARK_AFTER saved samples touches
the file MARK and waits there, so the test's Ctrl-C always arrives mid-run, never after the eval finished.

usage: python eval_paused.py MARK MARK_AFTER -- EVAL_ARGS...
"""

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's sas_trl, as `-m sas_trl.cli` from ROOT

from sas_trl.cli import main  # noqa: E402
from sas_trl.evaluation import store  # noqa: E402

mark, after = Path(sys.argv[1]), int(sys.argv[2])
append = store.SampleStore.append


def append_then_wait(self, records):
    append(self, records)  # saved (and fsynced) first: the pause is after a batch, as a real Ctrl-C may be
    if len(self.records) >= after:
        mark.touch()
        time.sleep(600)  # until the test's SIGINT


store.SampleStore.append = append_then_wait
# A shell starts a background job (`pytest &`) with SIGINT ignored, and Python then installs no KeyboardInterrupt
# handler; a terminal's Ctrl-C reaches a foreground process, whose SIGINT is the default. Restore that default.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main(["eval", *sys.argv[4:]]))
