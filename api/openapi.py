"""What the OpenAPI document says about access: the ``x-user-id`` header, the bearer scheme, and
the 401/403/503 answers of the guarded routes (``api.auth`` decides them; this only describes them).

The header is read by the guards, not by the handlers, so it is added to each guarded operation's
parameters here (:class:`GuardedOperation`) rather than declared as a handler argument, which
would parse it on every request of the health route for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.enums import ParamType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import (
    Components,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
    SecurityScheme,
)
from litestar.status_codes import (
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from api.auth import USER_HEADER
from api.errors import error_responses

BEARER = "bearerToken"

USER_PARAMETER = Parameter(
    name=USER_HEADER,
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING),
    description=(
        "Who is asking: an identity header set by a trusted front proxy that has authenticated the "
        "person, NOT authentication (any client can send any value). Required by the health route "
        "unless a bearer token is given; with MARKET_DASHBOARD_REQUIRES_ADMIN, the dashboard, admin "
        "page and /metrics require one of MARKET_ADMIN_USER_IDS (or a bearer token)."
    ),
)

SECURITY: list[dict[str, list[str]]] = [{BEARER: []}, {}]
"""A bearer token may be presented (a wrong one is 401); without one, ``x-user-id`` decides."""

GUARDED_ERRORS = error_responses(HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN, HTTP_503_SERVICE_UNAVAILABLE)
USER_ERRORS = error_responses(HTTP_401_UNAUTHORIZED, HTTP_503_SERVICE_UNAVAILABLE)


@dataclass
class GuardedOperation(Operation):
    """An operation whose guard reads ``x-user-id``: the header is listed among its parameters."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), USER_PARAMETER]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Market memory API",
        version="1",
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A token of MARKET_API_TOKENS (for monitors and Prometheus); counts as an admin.",
                )
            }
        ),
    )
