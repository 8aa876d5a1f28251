"""The test harness: what tests of every area share (kazoo's `kazoo/testing/harness.py` is the model).

- `waiting`: `wait_for` (polling, for synchronous tests) and `eventually` (awaiting, for async ones).
- `processes`: free ports, and real `mesolite` processes started, health-checked and stopped (`ProcessLauncher`).
- `zookeeper`: a real ZooKeeper server from Debian's package (`start_zookeeper`).
- `ensemble`: a real three-server ZooKeeper ensemble (`start_ensemble`), for the chaos tests and the benchmarks.
- `http`: `get_json` for tests that read a service's JSON over plain urllib.

Fixtures built on these live in `tests/conftest.py`; each test area's own helpers live next to its tests
(`agent_testing`, `master_helpers`, `marathon_testing`, `tls_testing`).
"""
