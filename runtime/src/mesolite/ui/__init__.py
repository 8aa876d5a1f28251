"""The web UIs of the master (:5050) and of Marathon (:8080).

Two small single-page front ends in plain HTML, CSS and JavaScript modules (no build step, nothing
fetched from the internet) under `static/`, and `routes.py`, which the master's and Marathon's aiohttp
applications call to serve them.
"""

from mesolite.ui.routes import add_marathon_ui, add_master_ui

__all__ = ["add_marathon_ui", "add_master_ui"]
