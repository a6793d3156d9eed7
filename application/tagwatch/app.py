"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from tagwatch.config import Settings


def create_app(config: Settings | None = None) -> Flask:
    """Build the API app; `config` defaults to settings from the environment (tests pass their own)."""
    from tagwatch.api import cache, register_blueprints, register_errorhandlers
    from tagwatch.api.observe import register_observability

    settings = config or Settings.from_env()
    # static_folder=None: the page blueprint serves /static; an app-level rule would shadow it (404)
    app = Flask(__name__, static_folder=None)
    app.config["SETTINGS"] = settings
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    register_observability(app)
    cache.register(app)
    register_blueprints(app)
    register_errorhandlers(app)
    precreate_http_series(app)
    return app


def precreate_http_series(app: Flask) -> None:
    """Latency series for every route exist at 0 from the start (Prometheus sees them before traffic)."""
    from tagwatch import metrics

    routes = [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "web.static"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    metrics.precreate_http(routes)
