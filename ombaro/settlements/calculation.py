"""What a vendor is owed for a period, computed in one set-based statement per batch of vendors.

The rounding rule (docs/settlements.md): every line is rounded once, to the paise, half away
from zero ("half-up" for amounts of either sign: PostgreSQL's round(numeric, 2), Python's
ROUND_HALF_UP):

    commission = round(sale * commission_rate / 100, 2)
    tds        = round(sale * tds_rate / 100, 2)        (the 194-O rate in force on the line's date)
    net        = gross - commission - tds               (exact: no rounding left to do)

A settlement's figures are plain sums of its lines plus its adjustments, never rounded again,
so gross - commission - TDS + adjustments = net holds to the paise by construction (and a CHECK
holds every line to it).

Which lines a run for [period_start, period_end] takes, for each vendor of the batch:
  * every payment not yet settled whose booking is completed (booking date on or before the
    period's end) and that succeeded before the end of the period's last day in the platform zone;
  * every processed refund not yet settled, processed before that instant, whose payment is
    settled already or is settled by this same run (a refund after settlement is a negative line
    in the next one).
Earlier unsettled lines are swept in too (a payment of last week whose booking completed this
week): a payment belongs to exactly one settlement, the first run that finds it eligible.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from ombaro.money import PAISA, round_money

PAISE = PAISA
TDS_SECTION = "194-O"
# The schema's default commission rate; a vendor whose rate is NULL is charged it (vendors.commission_rate).
DEFAULT_COMMISSION_RATE = Decimal("15.00")


round_paise = round_money  # the one rounding of a line: to the paise, half away from zero


def period_end_instant(period_end: dt.date, zone: str) -> dt.datetime:
    """The first instant after the period: midnight starting the next day in the platform zone."""
    return dt.datetime.combine(period_end + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(zone))


# Parameters: :vendors uuid[], :period_start, :period_end date, :end_at timestamptz, :zone text,
# :section text, :default_rate numeric.
LINES = """
vendor_terms AS (
    SELECT v.id AS vendor_id,
           coalesce(v.commission_rate, CAST(:default_rate AS numeric)) AS commission_rate,
           (nullif(btrim(v.pan_number), '') IS NOT NULL) AS pan_available
    FROM vendors AS v
    WHERE v.id = ANY (CAST(:vendors AS uuid[]))
      AND NOT EXISTS (SELECT 1 FROM payment_settlements AS s
                      WHERE s.vendor_id = v.id AND s.settlement_period_start = :period_start
                        AND s.settlement_period_end = :period_end)
),
payment_lines AS (
    SELECT p.vendor_id, p.id AS payment_id, CAST(NULL AS uuid) AS refund_id, p.booking_id,
           'payment' AS kind, CAST(p.payment_date AT TIME ZONE :zone AS date) AS item_date,
           CASE WHEN p.payment_method = 'cash' THEN 'vendor' ELSE 'platform' END AS collected_by,
           p.total_amount AS sale_amount
    FROM payments AS p
    JOIN bookings AS b ON b.id = p.booking_id
    WHERE p.vendor_id = ANY (CAST(:vendors AS uuid[])) AND p.vendor_id IN (SELECT vendor_id FROM vendor_terms)
      AND p.status IN ('success', 'partially_refunded', 'refunded')
      AND p.payment_date < :end_at
      AND b.status = 'completed' AND b.booking_date <= :period_end
      AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.payment_id = p.id AND si.refund_id IS NULL)
),
refund_lines AS (
    SELECT r.vendor_id, r.payment_id, r.id AS refund_id, r.booking_id,
           'refund' AS kind, CAST(r.processed_at AT TIME ZONE :zone AS date) AS item_date,
           'platform' AS collected_by, -r.amount AS sale_amount
    FROM payment_refunds AS r
    WHERE r.vendor_id = ANY (CAST(:vendors AS uuid[])) AND r.vendor_id IN (SELECT vendor_id FROM vendor_terms)
      AND r.status = 'processed' AND r.processed_at < :end_at
      AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.refund_id = r.id)
      AND (EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.payment_id = r.payment_id AND si.refund_id IS NULL)
           OR r.payment_id IN (SELECT payment_id FROM payment_lines))
),
lines AS MATERIALIZED (
    SELECT l.vendor_id, l.payment_id, l.refund_id, l.booking_id, l.kind, l.item_date, l.collected_by,
           l.sale_amount,
           CASE WHEN l.collected_by = 'platform' THEN l.sale_amount ELSE 0 END AS gross_amount,
           t.commission_rate,
           round(l.sale_amount * t.commission_rate / 100, 2) AS commission_amount,
           rate.rate_percent AS tds_rate,
           round(l.sale_amount * rate.rate_percent / 100, 2) AS tds_amount
    FROM (SELECT * FROM payment_lines UNION ALL SELECT * FROM refund_lines) AS l
    JOIN vendor_terms AS t ON t.vendor_id = l.vendor_id
    LEFT JOIN tds_rates AS rate
      ON rate.section = :section AND rate.pan_available = t.pan_available
     AND l.item_date >= rate.effective_from AND (rate.effective_to IS NULL OR l.item_date <= rate.effective_to)
),
totals AS (
    SELECT vendor_id,
           count(DISTINCT booking_id) FILTER (WHERE kind = 'payment') AS total_bookings,
           count(*) AS items,
           count(*) FILTER (WHERE tds_rate IS NULL) AS unrated,
           min(item_date) FILTER (WHERE tds_rate IS NULL) AS first_unrated,
           sum(sale_amount) AS sale, sum(gross_amount) AS gross,
           sum(commission_amount) AS commission, sum(tds_amount) AS tds
    FROM lines GROUP BY vendor_id
),
pending_adjustments AS (
    SELECT a.id, a.vendor_id, a.amount, a.kind
    FROM settlement_adjustments AS a
    WHERE a.vendor_id IN (SELECT vendor_id FROM vendor_terms) AND a.settlement_id IS NULL
    FOR UPDATE
),
adjusted AS (
    SELECT vendor_id, sum(amount) AS amount, count(*) AS adjustments, bool_or(kind = 'manual') AS has_manual
    FROM pending_adjustments GROUP BY vendor_id
),
figures AS (
    SELECT t.vendor_id,
           coalesce(s.total_bookings, 0) AS total_bookings, coalesce(s.items, 0) AS items,
           coalesce(s.unrated, 0) AS unrated, s.first_unrated,
           coalesce(s.sale, 0) AS sale, coalesce(s.gross, 0) AS gross,
           coalesce(s.commission, 0) AS commission, coalesce(s.tds, 0) AS tds,
           coalesce(a.amount, 0) AS adjustment, coalesce(a.adjustments, 0) AS adjustments,
           coalesce(s.gross, 0) - coalesce(s.commission, 0) - coalesce(s.tds, 0) + coalesce(a.amount, 0) AS net
    FROM vendor_terms AS t
    LEFT JOIN totals AS s ON s.vendor_id = t.vendor_id
    LEFT JOIN adjusted AS a ON a.vendor_id = t.vendor_id
    -- A vendor with lines, or with a manual adjustment, gets a settlement; a carried balance alone waits.
    WHERE coalesce(s.items, 0) > 0 OR coalesce(a.has_manual, false)
)
"""

DRY_RUN = f"""
WITH {LINES}
SELECT vendor_id, total_bookings, items, unrated, first_unrated, sale, gross, commission, tds, adjustment,
       adjustments, net
FROM figures ORDER BY vendor_id
"""

# Everything a batch writes, in one statement. A settlement with nothing to pay (net <= 0) is
# complete at once; a negative net is carried to the vendor's next settlement as an adjustment.
# Extra parameters: :run_id uuid, :requested_by uuid.
SETTLE = f"""
WITH {LINES},
created AS (
    INSERT INTO payment_settlements (vendor_id, settlement_period_start, settlement_period_end, total_bookings,
                                     gross_amount, commission_amount, tds_amount, adjustment_amount,
                                     net_settlement_amount, status, payment_method, notes)
    SELECT vendor_id, :period_start, :period_end, total_bookings, gross, commission, tds, adjustment, net,
           CASE WHEN net > 0 THEN 'pending' ELSE 'completed' END,
           CASE WHEN net > 0 THEN NULL ELSE 'none' END,
           CASE WHEN net < 0 THEN 'negative balance carried to the next settlement'
                WHEN net = 0 THEN 'nothing to pay' END
    FROM figures
    ON CONFLICT ON CONSTRAINT uq_payment_settlements_vendor_period DO NOTHING
    RETURNING id, vendor_id, net_settlement_amount
),
items AS (
    INSERT INTO settlement_items (settlement_id, vendor_id, payment_id, refund_id, booking_id, kind, item_date,
                                  collected_by, sale_amount, gross_amount, commission_rate, commission_amount,
                                  tds_section, tds_rate, tds_amount, net_amount)
    SELECT c.id, l.vendor_id, l.payment_id, l.refund_id, l.booking_id, l.kind, l.item_date, l.collected_by,
           l.sale_amount, l.gross_amount, l.commission_rate, l.commission_amount, :section, l.tds_rate,
           l.tds_amount, l.gross_amount - l.commission_amount - l.tds_amount
    FROM lines AS l JOIN created AS c ON c.vendor_id = l.vendor_id
),
applied AS (
    UPDATE settlement_adjustments AS a SET settlement_id = c.id, applied_at = now()
    FROM pending_adjustments AS p JOIN created AS c ON c.vendor_id = p.vendor_id
    WHERE a.id = p.id
),
carried AS (
    INSERT INTO settlement_adjustments (vendor_id, amount, kind, reason, source_settlement_id)
    SELECT vendor_id, net_settlement_amount, 'carried_balance',
           'negative balance of the settlement for ' || :period_start || ' to ' || :period_end, id
    FROM created WHERE net_settlement_amount < 0
),
approvals AS (
    INSERT INTO settlement_approvals (settlement_id, run_id, requested_by)
    SELECT id, :run_id, :requested_by FROM created
)
SELECT count(*) AS settlements, coalesce(sum(net_settlement_amount), 0) AS net FROM created
"""

# Vendors whose lines lack a TDS rate make the whole batch fail rather than settle without TDS.
UNRATED_CHECK = f"""
WITH {LINES}
SELECT vendor_id, first_unrated FROM figures WHERE unrated > 0 LIMIT 1
"""
