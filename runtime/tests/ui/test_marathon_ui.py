"""The Marathon UI in headless Chromium, over the test-only /v2 stand-in of fake_apis.

The stand-in answers in Marathon's public formats and records what the UI sent, so these tests check
both what the pages show and the API calls they make. The end-to-end test uses the real scheduler.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .fake_apis import FakeMarathon, make_marathon_app
from .ui_testing import save_screenshot

REFERENCE_NGINX = {
    "id": "/nginx-form",
    "cpus": 0.2,
    "mem": 32,
    "instances": 1,
    "constraints": [["hostname", "UNIQUE"]],
    "labels": {},
    "networks": [{"mode": "container/bridge"}],
    "container": {
        "type": "DOCKER",
        "docker": {"image": "nginx"},
        "portMappings": [{"hostPort": 0, "protocol": "tcp", "containerPort": 80}],
    },
}


@pytest.fixture
def marathon(serve):
    state = FakeMarathon()
    server = serve(make_marathon_app(state))
    server.state = state
    return server


def rows(page):
    return page.locator("tbody tr")


def fill_app_form(page, **values):
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(value)


def test_app_list_shows_status_instances_and_resources(page, marathon, tmp_path):
    page.goto(marathon.url + "/")
    expect(rows(page)).to_have_count(4)
    nginx = rows(page).filter(has_text="/nginx")
    expect(nginx).to_contain_text("running")
    expect(nginx.locator("td").nth(2)).to_have_text("2 / 2")
    expect(nginx.locator("td").nth(3)).to_have_text("2 / 2")
    expect(nginx.locator("td").nth(4)).to_have_text("0.2")
    expect(nginx.locator("td").nth(5)).to_have_text("32 MB")
    expect(rows(page).filter(has_text="/web/api")).to_contain_text("deploying")
    expect(rows(page).filter(has_text="/redis")).to_contain_text("waiting")
    expect(rows(page).filter(has_text="/reports/nightly")).to_contain_text("suspended")
    expect(page.locator("#meta")).to_contain_text("marathon 1.11.24")
    save_screenshot(page, "marathon-apps", tmp_path)


def test_app_list_filters_by_status_and_label(page, marathon):
    page.goto(marathon.url + "/")
    expect(rows(page)).to_have_count(4)
    page.get_by_label("Status").select_option("waiting")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("/redis")
    expect(page).to_have_url(re.compile(r"#/apps\?status=waiting$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Label").select_option("env=prod")
    expect(rows(page)).to_have_count(2)
    expect(page.locator("tbody")).to_contain_text("/redis")
    expect(page.locator("tbody")).to_contain_text("/web/api")


def test_create_form_shows_validation_errors_next_to_the_fields_then_creates(page, marathon, tmp_path):
    page.goto(marathon.url + "/#/create")
    fill_app_form(page, ID="Nginx_Form", **{"Docker image": "nginx", "CPUs": "0.2", "Memory (MiB)": "32"})
    fill_app_form(page, Instances="-1", Ports="80", Constraints="hostname:UNIQUE")
    page.get_by_role("button", name="Create application").click()
    id_field = page.get_by_label("ID", exact=True)
    expect(id_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#app-id-error")).to_contain_text("must fully match regular expression")
    expect(page.locator("#app-instances-error")).to_have_text("got -1, expected 0 or more")
    expect(page.get_by_label("Instances")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert").first).to_contain_text("Marathon did not accept this definition")
    expect(id_field).to_be_focused()
    save_screenshot(page, "marathon-create-errors", tmp_path)

    fill_app_form(page, ID="/nginx-form", Instances="1")
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("/nginx-form")
    expect(page).to_have_url(re.compile(r"#/apps/%2Fnginx-form$"))
    method, path, body = marathon.state.requests[-1]
    assert (method, path) == ("POST", "/v2/apps")
    assert body == REFERENCE_NGINX


def test_create_from_pasted_json(page, marathon):
    page.goto(marathon.url + "/#/create")
    page.get_by_role("button", name="Edit as JSON").click()
    area = page.get_by_label("Application definition (JSON, as for POST /v2/apps)")
    expect(area).to_be_focused()
    area.fill("{not json")
    page.get_by_role("button", name="Create application").click()
    expect(page.locator("#app-json-error")).to_contain_text("This is not valid JSON")
    definition = {"id": "/hello", "cmd": "python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32, "instances": 1}
    area.fill(json.dumps({**definition, "constraints": [["hostname", "SPREAD"]]}))
    page.get_by_role("button", name="Create application").click()
    expect(page.locator("#app-json-error")).to_contain_text("/constraints(0)")
    area.fill(json.dumps(definition))
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("/hello")
    assert marathon.state.requests[-1] == ("POST", "/v2/apps", definition)


def test_edit_keeps_fields_the_form_does_not_show(page, marathon):
    page.goto(marathon.url + "/#/apps/%2Fnginx/edit")
    expect(page.get_by_label("Docker image")).to_have_value("nginx")
    expect(page.get_by_label("Ports")).to_have_value("80")
    expect(page.get_by_label("Constraints")).to_have_value("hostname:UNIQUE")
    expect(page.get_by_label("ID", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Memory (MiB)").fill("64")
    page.get_by_role("button", name="Save and deploy").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("/nginx")
    method, path, body = marathon.state.requests[-1]
    assert (method, path) == ("PUT", "/v2/apps/nginx")
    assert body["mem"] == 64
    assert body["healthChecks"] == [{"protocol": "MESOS_HTTP", "portIndex": 0, "path": "/"}]
    assert "tasks" not in body and "version" not in body


def test_app_page_scale_restart_suspend_and_destroy(page, marathon, tmp_path):
    page.goto(marathon.url + "/#/apps/%2Fnginx")
    tasks = page.locator("section", has=page.get_by_role("heading", name="Tasks"))
    expect(tasks.locator("tbody tr")).to_have_count(2)
    first_task = marathon.state.apps["/nginx"]["tasks"][0]
    port_link = tasks.get_by_role("link", name=str(first_task["ports"][0]))
    expect(port_link).to_have_attribute("href", f"http://{first_task['host']}:{first_task['ports'][0]}/")
    expect(tasks.locator("tbody tr").first).to_contain_text("healthy")
    expect(page.locator("section", has=page.get_by_role("heading", name="Versions")).locator("tbody tr")).to_have_count(
        1
    )
    save_screenshot(page, "marathon-app", tmp_path)

    page.get_by_role("button", name="Scale").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Instances")).to_be_focused()
    dialog.get_by_label("Instances").fill("3")
    dialog.get_by_label("Instances").press("Enter")
    expect(dialog).to_have_count(0)
    assert marathon.state.requests[-1] == ("PUT", "/v2/apps/nginx", {"instances": 3})
    expect(tasks.locator("tbody tr")).to_have_count(3)

    page.get_by_role("button", name="Restart").click()
    page.get_by_role("dialog").get_by_role("button", name="Restart").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert marathon.state.requests[-1][:2] == ("POST", "/v2/apps/nginx/restart")

    page.get_by_role("button", name="Suspend").click()
    page.get_by_role("dialog").get_by_role("checkbox").check()
    page.get_by_role("dialog").get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert marathon.state.requests[-1] == ("PUT", "/v2/apps/nginx", {"instances": 0})
    expect(page.get_by_role("heading", level=1)).to_contain_text("suspended")

    page.get_by_role("button", name="Destroy").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Cancel").click()
    assert "/nginx" in marathon.state.apps
    page.get_by_role("button", name="Destroy").click()
    page.get_by_role("dialog").get_by_role("button", name="Destroy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Applications")
    assert "/nginx" not in marathon.state.apps
    expect(rows(page).filter(has_text="/nginx")).to_have_count(0)


def test_waiting_app_says_why_from_the_queue(page, marathon, tmp_path):
    page.goto(marathon.url + "/#/apps/%2Fredis")
    panel = page.get_by_role("status").filter(has_text="Waiting for resources")
    expect(panel).to_contain_text("1 instance left to launch")
    expect(panel).to_contain_text("a placement constraint is not met: declined 2 of 2 offers (UnfulfilledConstraint)")
    expect(panel).to_contain_text("node2: a placement constraint is not met")
    save_screenshot(page, "marathon-app-waiting", tmp_path)


def test_deployments_page_shows_progress_and_rolls_back(page, marathon, tmp_path):
    page.goto(marathon.url + "/#/deployments")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("/web/api")
    expect(rows(page).first).to_contain_text("step 1 of 1")
    expect(rows(page).first).to_contain_text("ScaleApplication /web/api")
    save_screenshot(page, "marathon-deployments", tmp_path)
    rows(page).first.get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.get_by_text("No deployments in progress.")).to_be_visible()
    assert marathon.state.requests[-1] == ("DELETE", "/v2/deployments/5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", None)


def test_server_sent_events_refresh_the_list_at_once(page, marathon):
    page.goto(marathon.url + "/")
    expect(rows(page)).to_have_count(4)
    marathon.call(marathon_create(marathon.state, {"id": "/from-elsewhere", "cmd": "sleep 1000"}))
    # The timer alone would take 3 s; the event makes it well under that.
    expect(rows(page).filter(has_text="/from-elsewhere")).to_have_count(1, timeout=2000)


async def marathon_create(state: FakeMarathon, definition: dict) -> None:
    state.put_app(definition)
    await state.notify("deployment_success", {})
