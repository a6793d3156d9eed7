"""gunicorn configuration file for the container: the settings live in tagwatch.gunicorn_conf."""

from tagwatch.gunicorn_conf import *  # noqa: F403
