"""`GET /schema/scalemesh.json`: the JSON Schema of a repository's `scalemesh.json`, for editors
(`"$schema": "https://<api>/schema/scalemesh.json"`). No sign-in: it is the same for everyone.

It sits beside the OpenAPI document (`/schema`, `/schema/openapi.json`), which Litestar serves.
"""

from __future__ import annotations

from litestar import Response, get

from builder.siteconfig.schema import schema_bytes

MEDIA_TYPE = "application/schema+json"


@get(
    "/schema/scalemesh.json",
    summary="The JSON Schema of scalemesh.json",
    media_type=MEDIA_TYPE,
    include_in_schema=False,
)
async def scalemesh_schema() -> Response[bytes]:
    return Response(schema_bytes(), media_type=MEDIA_TYPE)


ROUTES = [scalemesh_schema]
