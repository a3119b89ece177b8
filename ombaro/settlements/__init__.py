"""Vendor settlements (docs/settlements.md): the calculation and its rounding rule
(`calculation`), runs in batches (`runs`), approval and payouts (`payouts`), statements
(`statements`) and the dated TDS rates (`rates`)."""

from ombaro.settlements.calculation import round_paise
from ombaro.settlements.runs import (
    InvalidPeriod,
    InvalidRequest,
    MissingTdsRate,
    Period,
    SettlementError,
    SettlementNotFound,
    previous_week,
)

__all__ = ["InvalidPeriod", "InvalidRequest", "MissingTdsRate", "Period", "SettlementError", "SettlementNotFound",
           "previous_week", "round_paise"]
