"""Domain errors as Marathon's HTTP answers: 422 with details, 404, 409 with the locking deployments, 503."""

from __future__ import annotations

import logging

from aiohttp import web

from mesolite.marathon.api.context import NotLeading, RequestRefused
from mesolite.marathon.app_definition import ValidationError
from mesolite.marathon.marathon import Conflict, NotFound
from mesolite.marathon.storage import StorageUnavailable

log = logging.getLogger(__name__)


def json_error(status: int, body: dict) -> web.Response:
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as error:
        return json_error(422, error.to_json())
    except NotFound as error:
        return json_error(404, {"message": str(error)})
    except Conflict as error:
        return json_error(409, {"message": str(error), "deployments": error.deployments})
    except RequestRefused as error:
        return json_error(error.status, {"message": str(error)})
    except (NotLeading, StorageUnavailable) as error:
        return json_error(503, {"message": str(error)})
    except web.HTTPException as error:
        if error.content_type == "application/json" or error.status < 400:
            raise
        return json_error(error.status, {"message": error.reason if not error.text else error.text})
    except Exception as error:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, {"message": f"internal error: {error.__class__.__name__}: {error}"})
