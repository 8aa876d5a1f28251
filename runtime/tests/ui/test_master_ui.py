"""The master UI in headless Chromium, over canned /master/state and /metrics/snapshot in Mesos's format.

The master and agent are the test-only stand-ins of fake_apis; the UI routes and the sandbox proxy
are the real ones. The end-to-end test drives the same pages against real processes.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .fake_apis import (
    AGENT_IDS,
    MARATHON_FRAMEWORK_ID,
    NGINX_TASK_IDS,
    STATE_OVERRIDES,
    make_agent_app,
    make_master_app,
)
from .ui_testing import save_screenshot


@pytest.fixture
def master(serve, tmp_path):
    agent = serve(make_agent_app(tmp_path / "sandboxes"))
    app = make_master_app(f"127.0.0.1:{agent.port}")
    server = serve(app)
    server.state_overrides = app[STATE_OVERRIDES]
    return server


def test_overview_shows_the_cluster_its_resources_and_counts(page, master, tmp_path):
    page.goto(master.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster lab")
    master_card = page.locator("section", has=page.get_by_role("heading", name="Master"))
    expect(master_card).to_contain_text("Leadernode1:5050")
    expect(master_card).to_contain_text("Version1.11.0")
    expect(master_card).to_contain_text("Uptime1h 6m")
    expect(page.get_by_role("meter", name="CPUs used")).to_have_attribute("value", "0.1000")
    expect(page.get_by_text("0.4 / 4 (10%)")).to_be_visible()
    expect(page.get_by_role("list", name="Agents by state")).to_contain_text("active: 2")
    expect(page.get_by_role("list", name="Frameworks by state")).to_contain_text("completed: 1")
    tasks = page.get_by_role("list", name="Tasks by state")
    expect(tasks).to_contain_text("running: 2")
    expect(tasks).to_contain_text("failed: 1")
    expect(page).to_have_title("Cluster lab · Mesos master")
    save_screenshot(page, "master-overview", tmp_path)


def test_agents_and_an_agent_page_with_its_tasks(page, master, tmp_path):
    page.goto(master.url + "/#/agents")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("node1")
    expect(rows.first).to_contain_text("rack:r1; zone:lab")
    expect(rows.first).to_contain_text("0.2 / 2 (10%)")
    save_screenshot(page, "master-agents", tmp_path)
    page.get_by_role("link", name="node2").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Agent node2")
    active = page.locator("section", has=page.get_by_role("heading", name="Active tasks"))
    expect(active.locator("tbody tr")).to_have_count(1)
    expect(active).to_contain_text(NGINX_TASK_IDS[1])
    completed = page.locator("section", has=page.get_by_role("heading", name="Completed tasks"))
    expect(completed).to_contain_text("cluster-test")


def test_frameworks_and_a_framework_page(page, master):
    page.goto(master.url + "/#/frameworks")
    registered = page.locator("section", has=page.get_by_role("heading", name="Registered frameworks"))
    expect(registered.locator("tbody tr")).to_have_count(1)
    expect(registered).to_contain_text(MARATHON_FRAMEWORK_ID)
    expect(registered.locator("tbody tr td").nth(5)).to_have_text("2")  # active tasks
    completed = page.locator("section", has=page.get_by_role("heading", name="Completed frameworks"))
    expect(completed).to_contain_text("mesos-execute instance")
    registered.get_by_role("link", name="marathon").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Framework marathon")
    expect(page.get_by_role("link", name="http://node1:8080")).to_be_visible()
    active = page.locator("section", has=page.get_by_role("heading", name="Active tasks"))
    expect(active.locator("tbody tr")).to_have_count(2)


def test_tasks_page_filters_and_a_task_page_shows_history_and_sandbox(page, master, tmp_path):
    page.goto(master.url + "/#/tasks")
    active = page.locator("section", has=page.get_by_role("heading", name="Active tasks"))
    expect(active.locator("tbody tr")).to_have_count(2)
    completed = page.locator("section", has=page.get_by_role("heading", name="Completed tasks"))
    expect(completed.locator("tbody tr")).to_have_count(2)
    save_screenshot(page, "master-tasks", tmp_path)
    page.get_by_label("Filter").fill("finished")
    expect(completed.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"#/tasks\?q=finished$"))
    page.get_by_label("Filter").fill("")

    active.get_by_role("link", name=NGINX_TASK_IDS[0]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(NGINX_TASK_IDS[0])
    history = page.locator("section", has=page.get_by_role("heading", name="Status history"))
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history.locator("tbody tr").first).to_contain_text("running")
    log = page.get_by_label("stdout of the task")
    expect(log).to_contain_text("GET /39 HTTP/1.1 200")
    save_screenshot(page, "master-task-sandbox", tmp_path)
    page.get_by_role("button", name="stderr").click()
    expect(page.get_by_label("stderr of the task")).to_contain_text("start worker processes")
    expect(page.get_by_role("button", name="stderr")).to_have_attribute("aria-pressed", "true")


def test_pages_refresh_by_themselves_without_reloading(page, master):
    page.goto(master.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster lab")
    page.evaluate("window.loadedOnce = true")
    master.state_overrides["cluster"] = "renamed"
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster renamed", timeout=6000)
    assert page.evaluate("window.loadedOnce") is True


def test_focus_survives_a_refresh(page, master):
    page.goto(master.url + "/#/tasks")
    field = page.get_by_label("Filter")
    field.fill("nginx")
    page.wait_for_timeout(2500)  # at least one refresh happens meanwhile
    expect(field).to_be_focused()
    expect(field).to_have_value("nginx")


def test_usable_by_keyboard(page, master):
    page.goto(master.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster lab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/$"))  # the skip link is not a route
    # Brand link, then the navigation: Overview, Agents.
    page.get_by_role("link", name="Overview").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Agents", exact=True)).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "focused links must show a focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Agents")
    expect(page.get_by_role("link", name="Agents", exact=True)).to_have_attribute("aria-current", "page")


def test_unknown_task_says_so(page, master):
    page.goto(master.url + f"/#/tasks/{MARATHON_FRAMEWORK_ID}/no-such-task")
    expect(page.get_by_role("heading", level=1)).to_have_text("Task not found")
    page.goto(master.url + f"/#/agents/{AGENT_IDS[0]}x")
    expect(page.get_by_role("heading", level=1)).to_have_text("Agent not found")
