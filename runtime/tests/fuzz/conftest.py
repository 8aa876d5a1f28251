"""Fixtures of the fuzz tests: the hypothesis profile, and processes started once per test module.

Profiles: `ci` (the default: a fixed example budget, derandomized so that a CI failure replays as is) and
`fuzz-long` (random, many more examples: `make fuzz`, or MESOLITE_FUZZ_PROFILE=fuzz-long). Real processes
take seconds to start, so each module starts its cluster once and every example runs against it; an example
that kills a process gets it restarted by the module's `ensure_running()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from harness.processes import ProcessLauncher

COMMON = {
    "deadline": None,  # real processes over HTTP: an example's time says nothing about a bug
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    "database": None,  # no .hypothesis/ directory in the tree; failures are written to the findings file
    "report_multiple_bugs": True,
}
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **COMMON)
settings.register_profile(
    "fuzz-long",
    max_examples=2_000,
    derandomize=False,
    print_blob=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    **COMMON,
)
settings.load_profile(os.environ.get("MESOLITE_FUZZ_PROFILE", "ci"))


def examples(ci: int) -> int:
    """The example budget of one test: `ci` in the CI profile, the profile's own (larger) budget otherwise."""
    profile = settings()
    return ci if os.environ.get("MESOLITE_FUZZ_PROFILE", "ci") == "ci" else profile.max_examples


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory, request) -> Iterator[ProcessLauncher]:
    """Like `launcher`, for the whole module; the processes' logs are printed when one of its tests failed."""
    processes = ProcessLauncher(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    yield processes
    processes.stop_all()
    if request.session.testsfailed:
        for started in processes.started:
            print(f"\n===== log of {started.name} ({' '.join(started.arguments[2:])}) =====\n{started.log()[-6000:]}")
