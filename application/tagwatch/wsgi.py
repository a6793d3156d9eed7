"""WSGI entry point for gunicorn: `tagwatch.wsgi:app`."""

from tagwatch.app import create_app

app = create_app()
