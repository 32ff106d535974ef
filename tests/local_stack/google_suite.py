"""Google's own system tests for google-cloud-pubsub, run unchanged against an emulator.

`tests/system.py` ships in the client's sdist on the package index: it is downloaded at the
installed client's version into a temporary directory (never into the repository) and run
by pytest in subprocesses, one case each, a few at a time, with PUBSUB_EMULATOR_HOST
pointing at the emulator under test. A run starts in the background (`SuiteRun.start`) so
its cases, which mostly sleep, overlap the rest of the test session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import xml.etree.ElementTree as ElementTree
from concurrent import futures
from importlib import metadata
from pathlib import Path

from tests.local_stack import googles_emulator

CLIENT = "google-cloud-pubsub"
PROJECT = "system-tests"
PARALLEL = 4  # cases at a time: they mostly wait, and the machine may be small
CASE_TIMEOUT = 150  # seconds per case: the longest waits 60 s; flaky reruns some up to 5x


class SuiteUnavailable(Exception):
    """The sdist could not be downloaded (no package index)."""


def download(directory: Path) -> Path:
    """`tests/system.py` of the installed client's sdist, unpacked under `directory`."""
    version = metadata.version(CLIENT)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
               ":all:", f"{CLIENT}=={version}", "--dest", str(directory)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    archives = sorted(directory.glob("google_cloud_pubsub-*.tar.gz"))
    if done.returncode or not archives:
        raise SuiteUnavailable(f"pip download {CLIENT}=={version} failed: {done.stderr[-500:]}")
    suite = directory / "suite"
    with tarfile.open(archives[0]) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/tests/system.py"))
        member.name = "tests/system.py"
        archive.extract(member, suite, filter="data")
    (suite / "tests" / "__init__.py").touch()
    (suite / "pytest.ini").write_text("[pytest]\n")  # keep this repository's settings out
    # system.py's `project` fixture calls google.auth.default(), which wants credentials of
    # some kind; against an emulator the clients send none.
    (suite / "credentials.json").write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "x",
                "client_secret": "x",
                "refresh_token": "x",
            }
        )
    )
    return suite


def _outcomes(report: Path) -> dict[str, str]:
    """case → passed, failed or skipped, from a JUnit report."""
    if not report.exists():
        return {}
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        classname = case.get("classname", "").removeprefix("tests.system")
        name = f"{classname.lstrip('.')}::{case.get('name')}" if classname else case.get("name")
        if case.find("skipped") is not None:
            outcomes[str(name)] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[str(name)] = "failed"
        else:
            outcomes[str(name)] = "passed"
    return outcomes


class SuiteRun:
    """One emulator's run of the chosen cases in PARALLEL pytest processes, in the
    background. Cases are dealt to the processes in the order given (slowest first), back
    and forth, so the slow ones land in different processes."""

    def __init__(self, suite: Path, host: str, cases: list[str], name: str) -> None:
        self.suite, self.host, self.cases, self.name = suite, host, cases, name
        self.outcomes: dict[str, str] = {}
        self.logs: dict[str, str] = {}
        self._pool = futures.ThreadPoolExecutor(PARALLEL, thread_name_prefix=f"suite-{name}")
        self._runs: list[futures.Future] = []
        self._lock = threading.Lock()

    def start(self) -> SuiteRun:
        buckets: list[list[str]] = [[] for _ in range(PARALLEL)]
        for number, case in enumerate(self.cases):
            lap, seat = divmod(number, PARALLEL)
            buckets[seat if lap % 2 == 0 else PARALLEL - 1 - seat].append(case)
        self._runs = [
            self._pool.submit(self._run, number, bucket)
            for number, bucket in enumerate(buckets)
            if bucket
        ]
        return self

    def _run(self, number: int, cases: list[str]) -> None:
        report = self.suite / f"{self.name}-{number}.xml"
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GOOGLE_", "PUBSUB_", "PYTEST_"))
        } | {
            "PUBSUB_EMULATOR_HOST": self.host,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.suite / "credentials.json"),
        }
        command = [sys.executable, "-m", "pytest", *(f"tests/system.py::{c}" for c in cases),
                   "-p", "no:cacheprovider", "-rA", f"--junitxml={report}"]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=self.suite, env=environment, capture_output=True, text=True,
                timeout=CASE_TIMEOUT * len(cases),
            )  # fmt: skip
            log = done.stdout[-6000:]
        except subprocess.TimeoutExpired:
            log = f"timed out after {CASE_TIMEOUT * len(cases)} s"
        outcomes = _outcomes(report)
        with self._lock:
            for case in cases:
                self.outcomes[case] = outcomes.get(case, "failed")
                self.logs[case] = log

    def wait(self) -> dict[str, str]:
        for run in self._runs:
            run.result()
        self._pool.shutdown()
        return dict(self.outcomes)


def collect(suite: Path) -> list[str]:
    """The gRPC cases system.py holds (its REST ones need a REST emulator)."""
    command = [sys.executable, "-m", "pytest", "tests/system.py", "--collect-only", "-q",
               "-p", "no:cacheprovider", "-k", "not rest"]  # fmt: skip
    done = subprocess.run(command, cwd=suite, capture_output=True, text=True, timeout=120)
    prefix = "tests/system.py::"
    return [
        line.removeprefix(prefix) for line in done.stdout.splitlines() if line.startswith(prefix)
    ]


class Background:
    """Downloads the suite, starts the emulators and their runs, all off the main thread:
    `Background(...).start()`, later `runs()` and `stop()`."""

    def __init__(self, ours_cases: list[str], google_cases: list[str], known: set[str]) -> None:
        """`ours_cases` in the order to run them; any collected case not `known` runs too."""
        self.ours_cases, self.google_cases, self.known = ours_cases, google_cases, known
        self.directory = Path(tempfile.mkdtemp(prefix="pubsub-system-tests-"))
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.cases: list[str] = []
        self.google_unavailable = ""
        self._runs: dict[str, SuiteRun] = {}
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._begin, name="system-tests", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def _begin(self) -> None:
        try:
            suite = download(self.directory)
            self.cases = collect(suite)
            # The table's order (slowest first), then any case the table does not know yet.
            ours = [c for c in self.ours_cases if c in self.cases]
            ours += [c for c in self.cases if c not in self.known]
            (self.directory / "google-data").mkdir()
            google = ""
            try:
                google, process = googles_emulator.start(self.directory / "google-data")
                self.processes.append(("google", process))
            except googles_emulator.Unavailable as why:
                self.google_unavailable = str(why)
            self._runs["ours"] = SuiteRun(suite, self._start_ours(), ours, "ours").start()
            if google:
                self._runs["google"] = SuiteRun(suite, google, self.google_cases, "google").start()
        except Exception as error:  # noqa: BLE001 - re-raised in the test that asks for the runs
            self._error = error

    def _start_ours(self) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "local_stack.pubsub", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.processes.append(("ours", process))
        line = process.stdout.readline().strip() if process.stdout else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"our emulator did not start: {line!r}")
        return line.removeprefix("listening on ")

    def runs(self) -> dict[str, SuiteRun]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._runs

    def stop(self) -> None:
        self._thread.join(timeout=600)
        for run in self._runs.values():
            run.wait()
        for kind, process in self.processes:
            if kind == "google":
                googles_emulator.stop(process)
            else:
                process.terminate()
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)
