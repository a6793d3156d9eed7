"""GET /api/openapi.json (placeholder until the document lands)."""

from flask import Blueprint

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document describing this API."""
    return {"openapi": "3.1.0", "info": {"title": "tagwatch", "version": "0.1.0"}, "paths": {}}
