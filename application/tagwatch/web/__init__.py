"""The human page: an HTML shell whose script fetches the summaries from /api/v1 and draws them."""

from flask import Blueprint, render_template

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@bp.get("/")
def index() -> str:
    """Render the page shell; static/app.js fetches every number it shows from the API."""
    return render_template("index.html")
