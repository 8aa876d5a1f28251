"""The Basic authentication middleware on a real aiohttp server."""

import aiohttp
import pytest
from aiohttp import web

from mesolite.security.authentication import (
    BasicAuthenticator,
    authentication_middleware,
    basic_authorization,
    principal_of,
)


async def start(json_body: bool = False):
    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"principal": principal_of(request)})

    authenticator = BasicAuthenticator({"ops": "s3cret", "other": "x"})
    app = web.Application(
        middlewares=[
            authentication_middleware(
                authenticator, lambda request: None if request.path == "/open" else "mesos", json_body
            )
        ]
    )
    app.router.add_get("/open", whoami)
    app.router.add_get("/closed", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "authorization",
    [None, basic_authorization("ops", "wrong"), basic_authorization("nobody", "s3cret"), "Basic !!!", "Bearer x"],
)
async def test_a_protected_route_needs_valid_credentials(authorization):
    runner, url = await start()
    headers = {"Authorization": authorization} if authorization else {}
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/closed", headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Basic realm="mesos"'
    finally:
        await runner.cleanup()


async def test_the_principal_reaches_the_handler_and_open_routes_stay_open():
    runner, url = await start(json_body=True)
    try:
        async with aiohttp.ClientSession() as session:
            good = {"Authorization": basic_authorization("ops", "s3cret")}
            async with session.get(f"{url}/closed", headers=good) as response:
                assert (response.status, await response.json()) == (200, {"principal": "ops"})
            async with session.get(f"{url}/open") as response:
                assert (response.status, await response.json()) == (200, {"principal": None})
            bad = {"Authorization": basic_authorization("ops", "nope")}
            async with session.get(f"{url}/open", headers=bad) as response:
                assert (response.status, await response.json()) == (200, {"principal": None})
            async with session.get(f"{url}/closed", headers=bad) as response:
                assert response.status == 401
                assert (await response.json())["message"]
    finally:
        await runner.cleanup()
