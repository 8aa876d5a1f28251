"""Both UIs end to end in headless Chromium: real ZooKeeper, master, two agents and Marathon as processes.

The issue's scenario: create the reference nginx app through the Marathon form (here a command app
serving HTTP on $PORT0, with the reference's resources and hostname:UNIQUE, because no image can be
pulled on this machine), watch it reach running, scale it to 2 on the two agents, open a task's stdout
from the master UI (read through the master's sandbox proxy), destroy the app.

The two agents register as "localhost" and "127.0.0.1": different hostnames for UNIQUE, both reachable
by the master's proxy.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from harness.http import get_json
from harness.processes import free_port
from harness.waiting import wait_for

from .ui_testing import save_screenshot

SERVICES = ("mesolite.master.service", "mesolite.agent.service", "mesolite.marathon.service")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(importlib.util.find_spec(name) is None for name in SERVICES),
        reason="the master, agent and Marathon services are not all in this tree yet",
    ),
]

COMMAND = "echo serving on $PORT0; exec python3 -m http.server --bind 127.0.0.1 $PORT0"


@pytest.fixture
def cluster(zookeeper, launcher, tmp_path):
    root = zookeeper.url("")
    mesos_zk, marathon_zk = f"{root}/mesos", f"{root}/marathon"
    master_port = free_port()
    master = launcher.start(
        "master", "master", f"--zk={mesos_zk}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={master_port}",
        f"--work_dir={tmp_path / 'master'}", "--quorum=1", "--allocation_interval=100ms", "--cluster=ui-test",
        port=master_port,
    )  # fmt: skip
    work_dirs = []
    for index, hostname in enumerate(["localhost", "127.0.0.1"]):
        port = free_port()
        work = tmp_path / f"agent-{index}"
        work.mkdir()
        boot_id = tmp_path / f"boot-{index}"
        boot_id.write_text(f"{uuid.uuid4()}\n")
        launcher.start(
            f"agent-{index}", "agent", f"--master={mesos_zk}", "--ip=127.0.0.1", f"--hostname={hostname}",
            f"--port={port}", f"--work_dir={work}", f"--boot_id_file={boot_id}",
            f"--resources=cpus:1;mem:1024;disk:1024;ports:[{31000 + 100 * index}-{31099 + 100 * index}]",
            "--containerizers=mesos", port=port,
        )  # fmt: skip
        work_dirs.append(work)
    marathon_port = free_port()
    marathon = launcher.start(
        "marathon", "marathon", f"--master={mesos_zk}", f"--zk={marathon_zk}", f"--http_port={marathon_port}",
        "--hostname=127.0.0.1", "--http_address=127.0.0.1", port=marathon_port, health_path="/v2/apps",
    )  # fmt: skip
    wait_for(
        lambda: get_json(master.url("/metrics/snapshot")).get("master/slaves_active", 0) == 2,
        30,
        what="both agents to register",
    )
    yield master, marathon
    # Executors outlive agents by design; leave no task behind.
    for work in work_dirs:
        for pid_file in work.glob("meta/slaves/*/frameworks/*/executors/*/runs/*/pids/executor.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                os.kill(int(Path(pid_file).read_text().split()[0]), signal.SIGKILL)


def test_create_scale_read_stdout_and_destroy_through_both_uis(cluster, page, tmp_path):
    # `cluster` first: its processes must stop only after the page is closed.
    master, marathon = cluster
    page.set_default_timeout(20_000)

    # Create through the Marathon form.
    page.goto(marathon.url("/#/create"))
    page.get_by_label("ID", exact=True).fill("/nginx")
    page.get_by_label("Command").fill(COMMAND)
    page.get_by_label("CPUs").fill("0.2")
    page.get_by_label("Memory (MiB)").fill("32")
    page.get_by_label("Instances").fill("1")
    page.get_by_label("Ports").fill("0")
    page.get_by_label("Constraints").fill("hostname:UNIQUE")
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("/nginx")

    # Watch it reach running.
    tasks = page.locator("section", has=page.get_by_role("heading", name="Tasks")).locator("tbody tr")
    expect(tasks).to_have_count(1, timeout=60_000)
    expect(tasks.first).to_contain_text("running", timeout=60_000)
    expect(page.get_by_role("heading", level=1)).to_contain_text("running", timeout=60_000)

    # Scale to 2: UNIQUE puts the second task on the other agent.
    page.get_by_role("button", name="Scale").click()
    page.get_by_role("dialog").get_by_label("Instances").fill("2")
    page.get_by_role("dialog").get_by_role("button", name="Scale").click()
    expect(tasks).to_have_count(2, timeout=60_000)
    expect(tasks.filter(has_text="running")).to_have_count(2, timeout=60_000)
    hosts = {tasks.nth(index).locator("td").nth(1).inner_text() for index in range(2)}
    assert hosts == {"localhost", "127.0.0.1"}
    host = tasks.first.locator("td").nth(1).inner_text()
    port_link = tasks.first.locator("td").nth(2).get_by_role("link")
    expect(port_link).to_have_attribute("href", f"http://{host}:{port_link.inner_text()}/")
    save_screenshot(page, "e2e-marathon-app", tmp_path)
    page.goto(marathon.url("/#/apps"))
    expect(page.locator("tbody tr").filter(has_text="/nginx")).to_contain_text("2 / 2")
    save_screenshot(page, "e2e-marathon-apps", tmp_path)

    # The master UI: the tasks, and one task's stdout through the master's proxy.
    page.goto(master.url("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster ui-test")
    expect(page.get_by_role("list", name="Agents by state")).to_contain_text("active: 2")
    save_screenshot(page, "e2e-master-overview", tmp_path)
    page.goto(master.url("/#/tasks"))
    active = page.locator("section", has=page.get_by_role("heading", name="Active tasks"))
    expect(active.locator("tbody tr")).to_have_count(2)
    active.locator("tbody tr").first.get_by_role("link").first.click()
    expect(page.get_by_label("stdout of the task")).to_contain_text("serving on 31", timeout=30_000)
    save_screenshot(page, "e2e-master-task", tmp_path)

    # Destroy, with confirmation.
    page.goto(marathon.url("/#/apps/%2Fnginx"))
    page.get_by_role("button", name="Destroy").click()
    page.get_by_role("dialog").get_by_role("button", name="Destroy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Applications")
    expect(page.locator("tbody tr").filter(has_text="/nginx")).to_have_count(0)
    wait_for(
        lambda: not any(task["state"] == "TASK_RUNNING" for task in get_json(master.url("/master/tasks"))["tasks"]),
        60,
        what="the tasks to be killed",
    )
