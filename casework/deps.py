"""Request dependency for the app's case pipeline (built by the app factory, kept on ``app.state``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from casework.pipeline import CasePipeline


async def get_pipeline(request: Request) -> CasePipeline:
    """This app's case pipeline (async: no I/O, so no hop to a worker thread)."""
    pipeline: CasePipeline = request.app.state.pipeline
    return pipeline


PipelineDep = Annotated[CasePipeline, Depends(get_pipeline)]
