"""Following Marathon: full syncs at start and after every reconnect, tasks leaving at once on TASK_KILLING,
HTTP Basic credentials, and the next URL when one Marathon does not answer (against the stand-in Marathon)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp
import pytest
from lb_testing import StandInMarathon, marathon_app

from harness.processes import free_port
from harness.waiting import eventually
from mesolite.lb.marathon_events import MarathonEndpoint, MarathonFollower, MarathonUnavailable, fetch_apps
from mesolite.lb.service import FLAGS, marathon_endpoint


@contextlib.asynccontextmanager
async def following(endpoint: MarathonEndpoint):
    synced: list[list[dict]] = []
    leaving: list[tuple[str, str]] = []

    async def on_apps(apps):
        synced.append(apps)

    async def on_leaving(task_id, status):
        leaving.append((task_id, status))

    follower = MarathonFollower(endpoint, on_apps, on_leaving, sync_interval=3600)
    running = asyncio.create_task(follower.run())
    try:
        yield follower, synced, leaving
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_full_sync_follows_every_reconnect_of_the_event_stream(marathon: StandInMarathon):
    marathon.put_app(marathon_app("/web", 10000))
    async with following(MarathonEndpoint((marathon.url,))) as (follower, synced, _):
        await eventually(lambda: synced and marathon.stream_count == 1, what="the first sync and the stream")
        first = follower.syncs
        marathon.end_streams()
        await eventually(lambda: follower.syncs > first and marathon.stream_count == 1, what="a resync on reconnect")
        assert synced[-1][0]["id"] == "/web" and "tasks" in synced[-1][0]


async def test_a_killing_task_is_reported_from_the_event_before_any_sync(marathon: StandInMarathon):
    marathon.put_app(marathon_app("/web", 10000))
    task = marathon.run_task("/web", 31000)
    async with following(MarathonEndpoint((marathon.url,))) as (_, synced, leaving):
        await eventually(lambda: synced and marathon.stream_count == 1, what="the stream")
        marathon.start_killing(task)
        await eventually(lambda: leaving, what="the leaving task")
        assert leaving == [(task["id"], "TASK_KILLING")]


async def test_marathon_credentials_are_sent_and_their_absence_is_reported():
    marathon = StandInMarathon(credentials=("lb", "s3cret"))
    await marathon.start()
    try:
        marathon.put_app(marathon_app("/web", 10000))
        async with aiohttp.ClientSession() as session:
            with pytest.raises(MarathonUnavailable, match="401"):
                await fetch_apps(session, MarathonEndpoint((marathon.url,)))
            apps = await fetch_apps(session, MarathonEndpoint((marathon.url,), credentials=("lb", "s3cret")))
        assert [app["id"] for app in apps] == ["/web"]
        async with following(MarathonEndpoint((marathon.url,), credentials=("lb", "s3cret"))) as (_, synced, _):
            await eventually(lambda: synced and marathon.stream_count == 1, what="an authenticated stream")
    finally:
        await marathon.stop()


async def test_the_next_marathon_url_is_used_when_one_does_not_answer(marathon: StandInMarathon):
    marathon.put_app(marathon_app("/web", 10000))
    endpoint = MarathonEndpoint((f"http://127.0.0.1:{free_port()}", marathon.url))
    async with following(endpoint) as (_, synced, _):
        await eventually(lambda: synced and marathon.stream_count == 1, what="sync and stream from the second URL")


async def test_an_https_marathon_is_checked_against_the_given_ca(cluster_pki):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cluster_pki.certificate_file, cluster_pki.key_file)
    marathon = StandInMarathon(ssl_context=server_context)
    await marathon.start()
    try:
        marathon.put_app(marathon_app("/web", 10000))
        trusted = FLAGS.parse([f"--marathon={marathon.url}", f"--marathon_ca_cert={cluster_pki.ca_file}"], environ={})
        untrusted = FLAGS.parse(
            [f"--marathon={marathon.url}", f"--marathon_ca_cert={cluster_pki.other_ca_file}"], environ={}
        )
        async with aiohttp.ClientSession() as session:
            apps = await fetch_apps(session, marathon_endpoint(trusted))
            assert [app["id"] for app in apps] == ["/web"]
            with pytest.raises(MarathonUnavailable, match=r"(?i)certificate"):
                await fetch_apps(session, marathon_endpoint(untrusted))
    finally:
        await marathon.stop()
