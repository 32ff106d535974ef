"""Children of the local stack live as long as it does, whichever thread started them."""

from __future__ import annotations

import sys
import threading
import time

from local_stack.processes import Child


def test_a_child_started_from_a_short_lived_thread_outlives_the_thread(tmp_path):
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path)
    starter = threading.Thread(target=child.spawn)
    starter.start()
    starter.join()
    try:
        time.sleep(1.0)  # PR_SET_PDEATHSIG would have fired when the thread exited
        assert child.alive, "the child died with the thread that started it"
    finally:
        child.stop()
    assert not child.alive
