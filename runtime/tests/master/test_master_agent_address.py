"""The master reaches an agent at the IP it registered from, never by its hostname.

An agent's `--hostname` is often a display name that does not resolve on the master; the agent's pid
(`slave(1)@<ip>:<port>`) and the UI's sandbox proxy must use its IP.
"""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from master_helpers import Scheduler, command_task, start_master

from harness.processes import free_port
from mesolite.master.http import with_agent_ip
from mesolite.master.master import CallError

AGENT_INFO = {"hostname": "node2", "port": 5051}


@pytest.mark.parametrize(
    ("agent_info", "remote", "ip"),
    [
        (AGENT_INFO, "192.168.56.12", "192.168.56.12"),  # the address it connected from
        (AGENT_INFO, "::ffff:192.168.56.12", "192.168.56.12"),  # an IPv4 client on a dual-stack socket
        ({**AGENT_INFO, "ip": "10.0.0.7"}, "192.168.56.12", "10.0.0.7"),  # what the agent advertises wins
        (AGENT_INFO, "::1", None),  # no IPv6 pids: the hostname stays the address
        (AGENT_INFO, None, None),
    ],
)
def test_agent_info_gets_the_agents_ip(agent_info, remote, ip):
    body = {"type": "REGISTER", "agent_info": agent_info}
    assert with_agent_ip(body, remote)["agent_info"].get("ip") == ip
    assert "ip" not in AGENT_INFO  # the request's body is not modified in place


@pytest.mark.parametrize("bad", ["node2", 3232249868, ""])
def test_an_advertised_ip_that_is_not_one_is_refused(bad):
    with pytest.raises(CallError, match=r"agent_info\.ip must be an IP address"):
        with_agent_ip({"type": "REGISTER", "agent_info": {**AGENT_INFO, "ip": bad}}, "192.168.56.12")


@pytest.mark.integration
async def test_sandbox_proxy_reaches_an_agent_whose_hostname_does_not_resolve(launcher, tmp_path):
    agent_port = free_port()
    master = start_master(launcher, "--allocation_interval=100ms")
    (tmp_path / "work").mkdir()
    (tmp_path / "boot_id").write_text(f"{uuid.uuid4()}\n")
    launcher.start(
        "agent", "agent", f"--master=127.0.0.1:{master.port}", "--ip=127.0.0.1", f"--port={agent_port}",
        "--hostname=display-name.invalid", f"--work_dir={tmp_path / 'work'}", f"--boot_id_file={tmp_path / 'boot_id'}",
        "--containerizers=mesos", "--resources=cpus:1;mem:256;disk:256", port=agent_port,
    )  # fmt: skip
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        scheduler = Scheduler(http, master.url())
        await scheduler.subscribe()
        try:
            (offer,) = await scheduler.offers(within=60)
            assert offer["hostname"] == "display-name.invalid"
            task = command_task(offer, "proxied", command="echo output through the master")
            assert (await scheduler.launch(offer, task)).status == 202
            state = None
            while state != "TASK_FINISHED":
                event = await scheduler.next("UPDATE", "OFFERS", within=60)  # offers of what the task leaves too
                if event["type"] == "UPDATE":
                    status = event["update"]["status"]
                    state = status["state"]
                    acknowledge = {key: status[key] for key in ("agent_id", "task_id", "uuid")}
                    await scheduler.call({"type": "ACKNOWLEDGE", "acknowledge": acknowledge})

            async with http.get(master.url("/master/slaves")) as response:
                (agent,) = (await response.json())["slaves"]
            assert agent["hostname"] == "display-name.invalid"
            assert agent["pid"] == f"slave(1)@127.0.0.1:{agent_port}"

            proxy = master.url(f"/ui/api/agents/{agent['id']}")
            query = {"framework_id": scheduler.framework_id, "task_id": "proxied"}
            async with http.get(f"{proxy}/sandbox", params=query) as response:
                assert response.status == 200, await response.text()
                directory = (await response.json())["directory"]
            async with http.get(f"{proxy}/files/read", params={"path": f"{directory}/stdout", "offset": 0}) as response:
                assert response.status == 200, await response.text()
                assert "output through the master" in (await response.json())["data"]
        finally:
            await scheduler.close()
