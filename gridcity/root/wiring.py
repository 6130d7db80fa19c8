"""How an app (or a CLI command) wires its case pipeline: which subscribers, with which settings.

Called where the app and the CLI are assembled (:func:`gridcity.root.app.create_app`, :mod:`gridcity.root.cli`); each
call builds a new pipeline, so two apps with different settings never affect each other.
"""

from __future__ import annotations

import dataclasses

from casework import live
from casework.pipeline import CasePipeline
from casework.rules import CaseRules
from dispatch.service import AutoDispatcher, RoutingSettings
from evaluation import facts
from gridcity.settings import Settings


def case_pipeline(settings: Settings, rules: CaseRules) -> CasePipeline:
    """The pipeline of an app over ``rules``: evaluation facts, the live stream, then auto-dispatch on filing.

    Auto-dispatch comes last, so that the filing's own facts and live event precede the dispatch it triggers
    (which runs through this same pipeline).
    """
    # The on-site radius (GRIDCITY_ONSITE_RADIUS_M) is part of the rules every route's actions are judged by.
    rules = dataclasses.replace(rules, onsite_radius_m=settings.onsite_radius_m)
    return CasePipeline(rules, [facts.on_change, live.on_change, AutoDispatcher(RoutingSettings.of(settings))])
