"""Everything that makes test data or test clients, one module per area (accounts, bookings,
campaigns, console, dispatch, identity, jobs, notifications, payments, payroll, settlements). Tests
import from here, never from a conftest module (tests/test_layout.py); conftest modules keep only
fixtures, which may call these. The ones most tests need are re-exported here."""

from tests.factories.accounts import PASSWORD, Account, client_for, make_account, unique_mobile

__all__ = ["PASSWORD", "Account", "client_for", "make_account", "unique_mobile"]
