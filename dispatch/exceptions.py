"""Errors of routing and dispatch.

Rule validation raises ``gridcity.errors.InvalidInput`` with stable ``routing.*`` codes straight from the pure
core (:mod:`dispatch.rules`, which may import nothing but the kernel's errors): ``routing.bad_class``,
``routing.bad_scope``, ``routing.bad_department``, ``routing.bad_date``, ``routing.bad_validity`` and
``routing.conflicting_rules``; an unknown department is ``department.unknown``. Role checks are the kernel's
``auth.role_forbidden``. No package-specific classes are needed beyond those.
"""
