"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from tagwatch.config import Settings


def create_app(config: Settings | None = None) -> Flask:
    """Build the API app; `config` defaults to settings from the environment (tests pass their own)."""
    from tagwatch.api import register_blueprints, register_errorhandlers
    from tagwatch.api.observe import register_observability

    settings = config or Settings.from_env()
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    register_observability(app)
    register_blueprints(app)
    register_errorhandlers(app)
    return app
