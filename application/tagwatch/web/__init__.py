"""The human page: an HTML shell whose script fetches the summaries from /api/v1 and draws them."""

from flask import Blueprint, current_app, render_template

from tagwatch.config import Settings

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
SOURCE_LABELS = {"x": "X", "mastodon": "Mastodon", "bluesky": "Bluesky", "sample": "built-in sample"}


@bp.get("/")
def index() -> str:
    """Render the page shell; static/app.js fetches every number it shows from the API."""
    settings: Settings = current_app.config["SETTINGS"]
    return render_template("index.html", sources=source_names(settings), sample="sample" in settings.sources)


def source_names(settings: Settings) -> list[str]:
    """How the page names each configured source: Mastodon with its servers' host names."""
    names = []
    for source in settings.sources:
        name = SOURCE_LABELS[source]
        if source == "mastodon":
            name += " (" + ", ".join(s.split("://", 1)[1] for s in settings.mastodon_servers) + ")"
        names.append(name)
    return names
