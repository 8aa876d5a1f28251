"""/v2/eventSubscriptions: HTTP callbacks (`--event_subscriber http_callback`) against real Marathons, with
subscribers on loopback: what they receive, that a dead one delays nobody, and that they survive a restart.
The bounded queue of one subscriber is checked on the delivery object itself, over real ZooKeeper storage."""

# ruff: noqa: F811 - fixtures imported from marathon_testing are redefined as parameters

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from marathon_cluster import SERVE
from marathon_testing import storage, zk_session  # noqa: F401

from harness.http import get_json, http
from harness.waiting import eventually, wait_for
from mesolite.marathon.callbacks import QUEUE_LIMIT, HttpCallbacks
from mesolite.marathon.events import EventBus

pytestmark = pytest.mark.integration

CALLBACKS = "--event_subscriber=http_callback"


class RecordingSubscriber:
    """An HTTP server on loopback keeping every event POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, event_type: str, **fields) -> list[dict]:
        return [
            e
            for e in list(self.events)
            if e["eventType"] == event_type and all(e.get(k) == v for k, v in fields.items())
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber() -> Iterator[RecordingSubscriber]:
    recording = RecordingSubscriber()
    yield recording
    recording.close()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A callback URL on loopback whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_ignore() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _address = listener.accept()
                held.append(connection)

    thread = threading.Thread(target=accept_and_ignore, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/never"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def subscriptions(service) -> str:
    return service.url("/v2/eventSubscriptions")


def subscribe(service, url: str):
    return http("POST", f"{subscriptions(service)}?callbackUrl={quote(url, safe='')}", None)


# -- the API -----------------------------------------------------------------------------------------


def test_without_the_flag_callbacks_are_refused_as_marathon_does(cluster, subscriber):
    service = cluster.start_marathon()
    status_code, _headers, body = subscribe(service, subscriber.url)
    assert status_code == 400
    assert "--event_subscriber http_callback" in body["message"]
    assert http("GET", subscriptions(service), None)[0] == 400


def test_subscribe_list_validate_and_unsubscribe(cluster, subscriber):
    service = cluster.start_marathon(CALLBACKS)
    status_code, _headers, event = subscribe(service, subscriber.url)
    assert status_code == 200
    assert event["eventType"] == "subscribe_event"
    assert event["callbackUrl"] == subscriber.url
    assert event["clientIp"] == "127.0.0.1"
    assert get_json(subscriptions(service)) == {"callbackUrls": [subscriber.url]}
    assert subscribe(service, subscriber.url)[0] == 200  # once only
    assert get_json(subscriptions(service)) == {"callbackUrls": [subscriber.url]}

    for bad in ("ftp://127.0.0.1/x", "file:///etc/passwd", "not a url", "http:///no-host"):
        status_code, _headers, body = subscribe(service, bad)
        assert status_code == 422, bad
        assert [detail["path"] for detail in body["details"]] == ["/callbackUrl"]
    status_code, _headers, body = http("POST", subscriptions(service), None)
    assert status_code == 422 and body["details"][0]["path"] == "/callbackUrl"

    status_code, _headers, event = http(
        "DELETE", f"{subscriptions(service)}?callbackUrl={quote(subscriber.url, safe='')}", None
    )
    assert status_code == 200
    assert event["eventType"] == "unsubscribe_event" and event["callbackUrl"] == subscriber.url
    assert get_json(subscriptions(service)) == {"callbackUrls": []}


# -- delivery ----------------------------------------------------------------------------------------


def test_a_subscriber_receives_the_events_of_an_app(cluster, subscriber):
    cluster.start_agent("127.0.0.1")
    service = cluster.start_marathon(CALLBACKS)
    assert subscribe(service, subscriber.url)[0] == 200
    app = {"id": "watched", "cmd": SERVE, "cpus": 0.1, "mem": 32, "instances": 1}
    status_code, headers, _body = http("POST", service.url("/v2/apps"), app)
    assert status_code == 201
    deployment_id = headers["Marathon-Deployment-Id"]

    wait_for(lambda: subscriber.of("api_post_event", uri="/v2/apps"), 30, what="api_post_event")
    [posted] = subscriber.of("api_post_event", uri="/v2/apps")
    assert posted["appDefinition"]["id"] == "/watched"
    wait_for(
        lambda: subscriber.of("status_update_event", appId="/watched", taskStatus="TASK_RUNNING"),
        60,
        what="status_update_event TASK_RUNNING",
    )
    wait_for(lambda: subscriber.of("deployment_success", id=deployment_id), 60, what="deployment_success")
    assert subscriber.of("subscribe_event", callbackUrl=subscriber.url)
    # The same JSON as the event stream's: the event types are in publishing order.
    types = [e["eventType"] for e in subscriber.events]
    assert types.index("api_post_event") < types.index("deployment_success")


def test_a_subscriber_that_never_answers_delays_neither_others_nor_the_api(cluster, subscriber, black_hole):
    # A dead callback holds each of its deliveries for the whole request timeout (a minute here): if
    # deliveries were shared, the live subscriber would see nothing for minutes, and the API would hang.
    service = cluster.start_marathon(CALLBACKS, "--http_event_request_timeout=60000")
    assert subscribe(service, black_hole)[0] == 200
    assert subscribe(service, subscriber.url)[0] == 200
    for index in range(5):
        app = {"id": f"app-{index}", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 0}
        assert http("POST", service.url("/v2/apps"), app, timeout=20)[0] == 201
    wait_for(
        lambda: len([e for e in subscriber.of("api_post_event") if e["uri"] == "/v2/apps"]) == 5,
        30,
        what="the live subscriber's five api_post_events",
    )
    assert get_json(subscriptions(service), timeout=20) == {"callbackUrls": [black_hole, subscriber.url]}


def test_subscriptions_survive_a_marathon_restart(cluster, subscriber):
    first = cluster.start_marathon(CALLBACKS)
    assert subscribe(first, subscriber.url)[0] == 200
    first.kill(signal.SIGTERM)
    second = cluster.start_marathon(CALLBACKS)
    wait_for(
        lambda: http("GET", subscriptions(second), None)[2] == {"callbackUrls": [subscriber.url]},
        30,
        what="the subscription listed by the new leader",
    )
    app = {"id": "after-restart", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 0}
    assert http("POST", second.url("/v2/apps"), app)[0] == 201
    wait_for(
        lambda: [e for e in subscriber.of("api_post_event") if e["appDefinition"]["id"] == "/after-restart"],
        30,
        what="an event from the new leader",
    )


async def test_a_slow_subscribers_queue_is_bounded_and_drops_are_counted(storage, black_hole):
    events = EventBus()
    callbacks = HttpCallbacks(storage, events, request_timeout=60)
    await callbacks.start()
    try:
        await callbacks.subscribe(black_hole, "127.0.0.1")
        subscriber = callbacks.subscribers[black_hole]
        # The worker takes the first event and hangs on it; the queue fills to its limit, the rest is dropped.
        await eventually(lambda: subscriber.queue.empty(), what="the worker posting the subscribe_event")
        for index in range(QUEUE_LIMIT + 50):
            events.publish("test_event", number=index)  # returns at once: publishing never waits
        assert subscriber.queue.qsize() == QUEUE_LIMIT
        assert subscriber.dropped == 50
    finally:
        await callbacks.stop()


def test_http_endpoints_are_subscribed_at_start(cluster, subscriber):
    service = cluster.start_marathon(CALLBACKS, f"--http_endpoints={subscriber.url}")
    assert get_json(subscriptions(service)) == {"callbackUrls": [subscriber.url]}
    app = {"id": "from-flag", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 0}
    assert http("POST", service.url("/v2/apps"), app)[0] == 201
    wait_for(lambda: subscriber.of("api_post_event", uri="/v2/apps"), 30, what="an event to the --http_endpoints URL")
