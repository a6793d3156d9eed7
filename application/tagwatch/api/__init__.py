"""HTTP API blueprints and their registration."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every blueprint: summaries, posts, runs/admin, health/metrics, the OpenAPI document, the page."""
    from tagwatch.api import admin, health, openapi, posts, summaries
    from tagwatch.web import bp as web_bp

    for blueprint in (summaries.bp, posts.bp, admin.bp, health.bp, openapi.bp, web_bp):
        app.register_blueprint(blueprint)


def register_errorhandlers(app: Flask) -> None:
    """Every error answers application/problem+json."""
    from tagwatch.api.errors import register

    register(app)
