"""ombaro.access.permissions.allowed_in: allowed_by's answers, kept beside the matrix they came from
(issue 16, session 10), so a new read of the matrix (an edit, the cache's expiry) is answered afresh."""

from __future__ import annotations

from ombaro.access.permissions import ACTIONS, MODULES, allowed_by, allowed_in, default_grants
from ombaro.access.roles import ROLES


def test_allowed_in_answers_as_allowed_by_for_every_role_module_and_action() -> None:
    grants = default_grants()
    for _ in range(2):  # asked afresh, then answered from what was kept
        for role in (*ROLES, None, "no_such_role"):
            for module in MODULES:
                for action in ACTIONS:
                    assert allowed_in(grants, role, module, action) == allowed_by(grants, role, module, action), (
                        role, module, action)


def test_a_new_matrix_is_answered_afresh_and_the_old_one_is_not_reused() -> None:
    grants = default_grants()
    role, module, action = next((r, m, a) for r, modules in grants.items() for m, actions in modules.items()
                                for a in actions if r != "super_admin" and allowed_by(grants, r, m, a))
    assert allowed_in(grants, role, module, action)
    # An edit: the role's whole hierarchy loses the grant, in a new dict (as GRANTS_CACHE hands out).
    edited = {held: {m: frozenset(a for a in actions if (m, a) != (module, action)) for m, actions in modules.items()}
              for held, modules in grants.items()}
    assert not allowed_by(edited, role, module, action)
    assert not allowed_in(edited, role, module, action)
    assert allowed_in(grants, role, module, action)  # the first matrix again: its own answer
