from __future__ import annotations

import os
from datetime import UTC, datetime

from runtime.ids import id_time, new_id


def test_ids_made_in_one_millisecond_keep_their_order():
    now = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    ids = [new_id(now) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {id_time(i) for i in ids} == {now}


def test_a_forked_child_does_not_repeat_its_parents_ids():
    now = datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC)
    new_id(now)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the next id in the same millisecond, sent to the parent
        os.write(write, new_id(now).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 26).decode()
    os.close(read)
    os.close(write)
    assert child != new_id(now)
