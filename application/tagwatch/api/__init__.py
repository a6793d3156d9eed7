"""HTTP API blueprints and their registration."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every blueprint (summaries, posts, admin, health) with the OpenAPI document generated from
    their declarations, and the page."""
    from tagwatch.api import admin, contract, health, posts, summaries
    from tagwatch.web import bp as web_bp

    app.register_blueprint(web_bp)
    contract.register(app, [summaries.bp, posts.bp, admin.bp, health.bp])


def register_errorhandlers(app: Flask) -> None:
    """Every error answers application/problem+json."""
    from tagwatch.api.errors import register

    register(app)
