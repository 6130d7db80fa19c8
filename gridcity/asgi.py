"""ASGI entry point for uvicorn workers: ``uvicorn gridcity.asgi:app`` (the app itself is built in
:mod:`gridcity.root.app`)."""

from gridcity.root.app import create_app

app = create_app()
