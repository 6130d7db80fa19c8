"""ASGI entry point for uvicorn workers: ``uvicorn gridcity.asgi:app``."""

from gridcity.app import create_app

app = create_app()
