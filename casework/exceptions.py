"""Errors of the case lifecycle, each with a stable code."""

from __future__ import annotations

from gridcity.errors import Conflict, InvalidInput, NotFound, PermissionDenied


class CaseNotFound(NotFound):
    """No such case, or not one the user may see."""

    default_code = "case.not_found"


class InvalidTransition(Conflict):
    """The action is not allowed in the case's current state (409, names the allowed actions)."""

    default_code = "case.invalid_transition"


class StaleCase(Conflict):
    """The case changed since the client read it (optimistic versioning)."""

    default_code = "case.stale_version"


class ActionForbidden(PermissionDenied):
    """The user's role or relation to the case does not permit the action."""

    default_code = "case.forbidden"


class MissingActionInput(InvalidInput):
    """The action needs input that was not given (department, photo, inspector, ...)."""

    default_code = "case.missing_input"


class AttachmentNotUsable(InvalidInput):
    """A photo named in an action is not the acting user's, or is already evidence of an event (422).

    Another user's photo answers ``attachment.unknown`` like a missing one (ids cannot be probed); the
    user's own photo that is already attached elsewhere answers ``attachment.already_used``.
    """

    default_code = "attachment.unknown"


class NotOnSite(InvalidInput):
    """A verify or check result sent from farther than the on-site radius, or with no position (422).

    The code is the one the phone API has always answered; the rule is the same on every route.
    """

    default_code = "mobile.not_on_site"
