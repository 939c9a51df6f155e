"""The OpenAPI document at `/schema`: settings, and request bodies described as strict.

Request structs refuse unknown fields (`forbid_unknown_fields`), and the schema says so with
`additionalProperties: false`, which Litestar's own struct plugin leaves out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator


class StrictStructSchemaPlugin(OpenAPISchemaPlugin):
    def __init__(self) -> None:
        from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

        self._inner = StructSchemaPlugin()

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return self._inner.is_plugin_supported_field(field_definition)

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = self._inner.to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Scale Mesh",
        version=version,
        description="Build every push, serve it at its own URL.",
        path="/schema",
        # JSON only: the HTML viewers load scripts from CDNs, and we serve nothing from CDNs.
        render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
    )
