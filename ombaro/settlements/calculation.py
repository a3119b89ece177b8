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
week): a payment belongs to exactly one settlement, the first run that finds it eligible. Payments
are read from the run's look-back bound (OMBARO_SETTLEMENT_LOOKBACK_DAYS before the period) so
years of settled history are not read by every batch; an eligible unsettled payment older than the
bound is reported by every run (runs.unsettleable) until a run with a longer look-back settles it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from ombaro.money import PAISA, round_money

PAISE = PAISA
TDS_SECTION = "194-O"
# s.194-O(4): no TDS for an individual or HUF seller (PAN or Aadhaar furnished) whose gross sales
# through the platform in the financial year do not exceed this.
SMALL_SELLER_LIMIT = Decimal("500000.00")
# The schema's default commission rate; a vendor whose rate is NULL is charged it (vendors.commission_rate).
DEFAULT_COMMISSION_RATE = Decimal("15.00")


round_paise = round_money  # the one rounding of a line: to the paise, half away from zero


def financial_year(day: dt.date) -> tuple[str, str]:
    """The Indian financial year (April to March) of `day`: ('2024-25', '2425')."""
    first = day.year if day.month >= 4 else day.year - 1
    return f"{first}-{(first + 1) % 100:02d}", f"{first % 100:02d}{(first + 1) % 100:02d}"


def lookback_instant(period_start: dt.date, lookback_days: int, zone: str) -> dt.datetime:
    """The first instant a run reads payments from: midnight starting `lookback_days` days before
    the period in the platform zone (0: no bound)."""
    if lookback_days < 0:
        raise ValueError(f"a look-back of {lookback_days} days")
    if lookback_days == 0:
        return dt.datetime(1, 1, 2, tzinfo=dt.UTC)
    return dt.datetime.combine(period_start - dt.timedelta(days=lookback_days), dt.time(0), tzinfo=ZoneInfo(zone))


def lookback_year_start(period_start: dt.date, lookback_days: int) -> dt.date:
    """The first day of the financial year of the look-back bound's day (no bound: the first date):
    no line a run reads is in an earlier financial year."""
    if lookback_days == 0:
        return dt.date(1, 1, 1)
    day = period_start - dt.timedelta(days=lookback_days)
    return dt.date(day.year if day.month >= 4 else day.year - 1, 4, 1)


def period_end_instant(period_end: dt.date, zone: str) -> dt.datetime:
    """The first instant after the period: midnight starting the next day in the platform zone."""
    return dt.datetime.combine(period_end + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(zone))


# Exact division in SQL: PostgreSQL divides numerics to a finite scale; a dividend with 30 decimal
# places makes the quotient carry 30, far below any paisa tie (a figure is still rounded once).
EXACT = "CAST('1.000000000000000000000000000000' AS numeric)"

# Parameters: :vendors uuid[], :period_start, :period_end date, :since, :end_at timestamptz, :zone text,
# :section text, :default_rate numeric, :exemption numeric, :fy_floor date. Payments made before :since (the run's
# look-back bound) are not read here; runs.unsettleable reports the unsettled ones.
LINES = f"""
profile AS (SELECT state_code FROM platform_tax_profile LIMIT 1),
-- The vendors settled for the period already, read once and hashed (NOT IN a CTE, never an anti
-- join): the period is new to the statistics (estimated one row), so the planner would otherwise
-- rescan all of the period's settlements for every vendor, or every payment, of the batch.
settled AS (
    SELECT s.vendor_id FROM payment_settlements AS s
    WHERE s.settlement_period_start = :period_start AND s.settlement_period_end = :period_end
),
vendor_terms AS (
    SELECT v.id AS vendor_id,
           coalesce(v.commission_rate, CAST(:default_rate AS numeric)) AS commission_rate,
           (nullif(btrim(v.pan_number), '') IS NOT NULL) AS pan_furnished,
           v.pan_status, v.pan_status_on, v.aadhaar_furnished,
           -- s.194-O(4): an individual or HUF who furnished PAN or Aadhaar
           (coalesce(v.taxpayer_type IN ('individual', 'huf'), false)
            AND (nullif(btrim(v.pan_number), '') IS NOT NULL OR v.aadhaar_furnished)) AS small_seller,
           nullif(btrim(v.gst_number), '') AS gstin,
           coalesce(substring(btrim(v.gst_number) FROM '^([0-9]{{2}})'), (SELECT state_code FROM profile))
               AS vendor_state,
           coalesce(substring(btrim(v.gst_number) FROM '^([0-9]{{2}})') <> (SELECT state_code FROM profile), false)
               AS inter_state
    FROM vendors AS v
    WHERE v.id = ANY (CAST(:vendors AS uuid[]))
      AND v.id NOT IN (SELECT vendor_id FROM settled)
),
payment_lines AS (
    SELECT p.vendor_id, p.id AS payment_id, CAST(NULL AS uuid) AS refund_id, p.booking_id,
           'payment' AS kind, CAST(p.payment_date AT TIME ZONE :zone AS date) AS item_date,
           CASE WHEN p.payment_method = 'cash' THEN 'vendor' ELSE 'platform' END AS collected_by,
           p.total_amount AS sale_amount, coalesce(p.tax_amount, 0) AS tax_shown
    FROM payments AS p
    JOIN bookings AS b ON b.id = p.booking_id
    WHERE p.vendor_id = ANY (CAST(:vendors AS uuid[]))
      AND p.vendor_id NOT IN (SELECT vendor_id FROM settled)
      AND p.status IN ('success', 'partially_refunded', 'refunded')
      AND p.payment_date >= :since AND p.payment_date < :end_at
      AND b.status = 'completed' AND b.booking_date <= :period_end
      -- a probe of the unique key per payment: OFFSET 0 keeps the planner from hashing every line
      -- ever settled instead (measured: it did, 380,000 lines read by every batch of 20,000 payments)
      AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.payment_id = p.id AND si.refund_id IS NULL
                      OFFSET 0)
),
-- s.194-O(4): an individual or HUF seller's sales are exempt while its gross sales through the
-- platform in the financial year (earlier settled lines, then this run's in date order) stay
-- within the limit; the line that crosses it and every later one bear TDS.
small_lines AS (
    SELECT pl.vendor_id, pl.payment_id, pl.item_date,
           CAST(extract(year FROM pl.item_date - interval '3 months') AS int) AS fy,
           pl.sale_amount - CASE WHEN rate.base = 'excluding_gst' THEN pl.tax_shown ELSE 0 END AS base
    FROM payment_lines AS pl
    JOIN vendor_terms AS t ON t.vendor_id = pl.vendor_id AND t.small_seller
    JOIN tds_rates AS rate
      ON rate.section = :section AND rate.pan_available
     AND pl.item_date >= rate.effective_from AND (rate.effective_to IS NULL OR pl.item_date <= rate.effective_to)
),
small_settled AS (
    SELECT si.vendor_id, CAST(extract(year FROM si.item_date - interval '3 months') AS int) AS fy,
           sum(si.tds_base) AS gross
    FROM settlement_items AS si
    WHERE si.kind = 'payment' AND si.vendor_id IN (SELECT vendor_id FROM vendor_terms WHERE small_seller)
      AND si.item_date >= :fy_floor  -- no line of this run is in an earlier financial year
    GROUP BY 1, 2
),
small_running AS (
    SELECT l.payment_id,
           coalesce(p.gross, 0) + sum(l.base) OVER (PARTITION BY l.vendor_id, l.fy ORDER BY l.item_date, l.payment_id)
               AS year_gross
    FROM small_lines AS l
    LEFT JOIN small_settled AS p ON p.vendor_id = l.vendor_id AND p.fy = l.fy
),
payment_terms AS (
    SELECT l.*, t.commission_rate, t.inter_state,
           rate.rate_percent AS tds_rate_in_force, rate.base AS tds_base_policy,
           (t.pan_furnished AND NOT (coalesce(t.pan_status = 'inoperative', false)
                                     AND (t.pan_status_on IS NULL OR t.pan_status_on <= l.item_date))) AS pan_operative,
           (coalesce(sr.year_gross <= CAST(:exemption AS numeric), false)
            AND (t.aadhaar_furnished OR (t.pan_furnished AND NOT (coalesce(t.pan_status = 'inoperative', false)
                 AND (t.pan_status_on IS NULL OR t.pan_status_on <= l.item_date))))) AS exempt,
           (l.collected_by = 'platform' AND t.gstin IS NOT NULL) AS tcs_due, tcs.rate_percent AS tcs_rate_in_force
    FROM payment_lines AS l
    JOIN vendor_terms AS t ON t.vendor_id = l.vendor_id
    LEFT JOIN small_running AS sr ON sr.payment_id = l.payment_id
    LEFT JOIN gst_rates AS tcs
      ON tcs.tax = 'tcs_52' AND l.item_date >= tcs.effective_from
     AND (tcs.effective_to IS NULL OR l.item_date <= tcs.effective_to)
    LEFT JOIN tds_rates AS rate
      ON rate.section = :section
     AND rate.pan_available = (t.pan_furnished AND NOT (coalesce(t.pan_status = 'inoperative', false)
                                                    AND (t.pan_status_on IS NULL OR t.pan_status_on <= l.item_date)))
     AND l.item_date >= rate.effective_from AND (rate.effective_to IS NULL OR l.item_date <= rate.effective_to)
),
payment_priced AS (
    SELECT vendor_id, payment_id, refund_id, booking_id, kind, item_date, collected_by, sale_amount, tax_shown,
           commission_rate,
           round(sale_amount * commission_rate / 100, 2) AS commission_amount,
           CASE WHEN exempt THEN 0 ELSE tds_rate_in_force END AS tds_rate,
           CASE WHEN exempt THEN 'exempt_194o4' WHEN NOT pan_operative THEN 'no_operative_pan' ELSE 'rate' END
               AS tds_rule,
           sale_amount - CASE WHEN tds_base_policy = 'excluding_gst' THEN tax_shown ELSE 0 END AS tds_base,
           CASE WHEN tcs_due THEN sale_amount - tax_shown ELSE 0 END AS tcs_base,
           CASE WHEN tcs_due THEN tcs_rate_in_force ELSE 0 END AS tcs_rate,
           inter_state,
           (tds_rate_in_force IS NULL OR (tcs_due AND tcs_rate_in_force IS NULL)) AS unrated
    FROM payment_terms
),
-- A refund reverses its payment's line at that line's rates and bases (settled earlier, or in this
-- run), never at the rates of the refund's own date: the share refunded of what was charged.
refund_priced AS (
    SELECT r.vendor_id, r.payment_id, r.id AS refund_id, r.booking_id, 'refund' AS kind,
           CAST(r.processed_at AT TIME ZONE :zone AS date) AS item_date,
           CASE WHEN p.payment_method = 'cash' THEN 'vendor' ELSE 'platform' END AS collected_by,
           -r.amount AS sale_amount, round(-r.amount * {EXACT} * src.tax_shown / src.sale, 2) AS tax_shown,
           src.commission_rate, round(-r.amount * src.commission_rate / 100, 2) AS commission_amount,
           -- Circular 20/2023: TDS deducted before a return is adjusted in the same financial year only.
           CASE WHEN src.same_year THEN src.tds_rate ELSE 0 END AS tds_rate,
           CASE WHEN src.same_year THEN src.tds_rule ELSE 'return_other_year' END AS tds_rule,
           round(-r.amount * {EXACT} * src.tds_base / src.sale, 2) AS tds_base,
           round(-r.amount * {EXACT} * src.tcs_base / src.sale, 2) AS tcs_base, src.tcs_rate, src.inter_state,
           -- the exact shares of the refunded line's bases, rounded once with their rates in `lines`
           -r.amount * {EXACT} * src.tds_base / src.sale AS tds_base_exact,
           -r.amount * {EXACT} * src.tcs_base / src.sale AS tcs_base_exact,
           false AS unrated
    FROM payment_refunds AS r
    JOIN payments AS p ON p.id = r.payment_id
    LEFT JOIN settlement_items AS si ON si.payment_id = r.payment_id AND si.refund_id IS NULL
    LEFT JOIN payment_priced AS pp ON pp.payment_id = r.payment_id
    CROSS JOIN LATERAL (
        SELECT coalesce(si.sale_amount, pp.sale_amount) AS sale, coalesce(si.tax_shown, pp.tax_shown) AS tax_shown,
               coalesce(si.commission_rate, pp.commission_rate) AS commission_rate,
               coalesce(si.tds_rate, pp.tds_rate) AS tds_rate, coalesce(si.tds_rule, pp.tds_rule) AS tds_rule,
               coalesce(si.tds_base, pp.tds_base) AS tds_base, coalesce(si.tcs_base, pp.tcs_base) AS tcs_base,
               coalesce(si.tcs_rate, pp.tcs_rate) AS tcs_rate,
               coalesce(si.tcs_igst <> 0, pp.inter_state) AS inter_state,
               -- one financial year (April to March): the same calendar year three months earlier
               extract(year FROM coalesce(si.item_date, pp.item_date) - interval '3 months')
               = extract(year FROM CAST(r.processed_at AT TIME ZONE :zone AS date) - interval '3 months')
                   AS same_year
    ) AS src
    WHERE r.vendor_id = ANY (CAST(:vendors AS uuid[])) AND r.vendor_id IN (SELECT vendor_id FROM vendor_terms)
      AND r.status = 'processed' AND r.processed_at < :end_at
      AND NOT EXISTS (SELECT 1 FROM settlement_items AS x WHERE x.refund_id = r.id)
      AND (si.id IS NOT NULL OR pp.payment_id IS NOT NULL)
),
lines AS MATERIALIZED (
    SELECT l.*, CASE WHEN l.collected_by = 'platform' THEN l.sale_amount ELSE 0 END AS gross_amount,
           round(l.tds_base_exact * l.tds_rate / 100, 2) AS tds_amount,
           CASE WHEN l.inter_state THEN 0 ELSE round(l.tcs_base_exact * l.tcs_rate / 200, 2) END AS tcs_cgst,
           CASE WHEN l.inter_state THEN 0 ELSE round(l.tcs_base_exact * l.tcs_rate / 200, 2) END AS tcs_sgst,
           CASE WHEN l.inter_state THEN round(l.tcs_base_exact * l.tcs_rate / 100, 2) ELSE 0 END AS tcs_igst
    FROM (SELECT vendor_id, payment_id, refund_id, booking_id, kind, item_date, collected_by, sale_amount, tax_shown,
                 commission_rate, commission_amount, tds_rate, tds_rule, tds_base, tcs_base, tcs_rate, inter_state,
                 tds_base AS tds_base_exact, tcs_base AS tcs_base_exact, unrated
          FROM payment_priced
          UNION ALL
          SELECT vendor_id, payment_id, refund_id, booking_id, kind, item_date, collected_by, sale_amount, tax_shown,
                 commission_rate, commission_amount, tds_rate, tds_rule, tds_base, tcs_base, tcs_rate, inter_state,
                 tds_base_exact, tcs_base_exact, unrated
          FROM refund_priced) AS l
),
totals AS (
    SELECT vendor_id,
           count(DISTINCT booking_id) FILTER (WHERE kind = 'payment') AS total_bookings,
           count(*) AS items,
           count(*) FILTER (WHERE unrated) AS unrated,
           min(item_date) FILTER (WHERE unrated) AS first_unrated,
           sum(sale_amount) AS sale, sum(gross_amount) AS gross,
           sum(commission_amount) AS commission, sum(tds_amount) AS tds,
           sum(tcs_cgst + tcs_sgst + tcs_igst) AS tcs
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
-- GST on the commission: the platform's invoice (or credit note) for the settlement, dated the
-- period's last day, taxed once on its total at the rate in force that day.
commission_gst AS (
    SELECT t.vendor_id, t.vendor_state, t.gstin, t.inter_state, g.rate_percent AS gst_rate,
           CASE WHEN t.inter_state THEN 0 ELSE round(coalesce(s.commission, 0) * g.rate_percent / 200, 2) END AS cgst,
           CASE WHEN t.inter_state THEN 0 ELSE round(coalesce(s.commission, 0) * g.rate_percent / 200, 2) END AS sgst,
           CASE WHEN t.inter_state THEN round(coalesce(s.commission, 0) * g.rate_percent / 100, 2) ELSE 0 END AS igst
    FROM vendor_terms AS t
    LEFT JOIN totals AS s ON s.vendor_id = t.vendor_id
    LEFT JOIN gst_rates AS g
      ON g.tax = 'commission' AND CAST(:period_end AS date) >= g.effective_from
     AND (g.effective_to IS NULL OR CAST(:period_end AS date) <= g.effective_to)
),
figures AS (
    SELECT t.vendor_id,
           coalesce(s.total_bookings, 0) AS total_bookings, coalesce(s.items, 0) AS items,
           coalesce(s.unrated, 0) + CASE WHEN g.gst_rate IS NULL THEN 1 ELSE 0 END AS unrated,
           coalesce(s.first_unrated, CASE WHEN g.gst_rate IS NULL THEN CAST(:period_end AS date) END) AS first_unrated,
           coalesce(s.sale, 0) AS sale, coalesce(s.gross, 0) AS gross,
           coalesce(s.commission, 0) AS commission, coalesce(s.tds, 0) AS tds, coalesce(s.tcs, 0) AS tcs,
           g.cgst + g.sgst + g.igst AS commission_gst, g.cgst, g.sgst, g.igst, g.gst_rate,
           g.vendor_state, g.gstin,
           coalesce(a.amount, 0) AS adjustment, coalesce(a.adjustments, 0) AS adjustments,
           coalesce(s.gross, 0) - coalesce(s.commission, 0) - (g.cgst + g.sgst + g.igst)
           - coalesce(s.tds, 0) - coalesce(s.tcs, 0) + coalesce(a.amount, 0) AS net
    FROM vendor_terms AS t
    LEFT JOIN totals AS s ON s.vendor_id = t.vendor_id
    LEFT JOIN adjusted AS a ON a.vendor_id = t.vendor_id
    LEFT JOIN commission_gst AS g ON g.vendor_id = t.vendor_id
    -- A vendor with lines, or with a manual adjustment, gets a settlement; a carried balance alone waits.
    WHERE coalesce(s.items, 0) > 0 OR coalesce(a.has_manual, false)
)
"""

DRY_RUN = f"""
WITH {LINES}
SELECT vendor_id, total_bookings, items, unrated, first_unrated, sale, gross, commission, commission_gst, tds, tcs,
       adjustment, adjustments, net
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
                                     net_settlement_amount, tcs_amount, commission_gst_amount, status,
                                     payment_method, notes)
    SELECT vendor_id, :period_start, :period_end, total_bookings, gross, commission, tds, adjustment, net, tcs,
           commission_gst,
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
                                  tds_section, tds_rate, tds_amount, net_amount, tax_shown, tds_base, tds_rule,
                                  tcs_base, tcs_rate, tcs_cgst, tcs_sgst, tcs_igst)
    SELECT c.id, l.vendor_id, l.payment_id, l.refund_id, l.booking_id, l.kind, l.item_date, l.collected_by,
           l.sale_amount, l.gross_amount, l.commission_rate, l.commission_amount, :section, l.tds_rate,
           l.tds_amount, l.gross_amount - l.commission_amount - l.tds_amount - l.tcs_cgst - l.tcs_sgst - l.tcs_igst,
           l.tax_shown, l.tds_base, l.tds_rule, l.tcs_base, l.tcs_rate, l.tcs_cgst, l.tcs_sgst, l.tcs_igst
    FROM lines AS l JOIN created AS c ON c.vendor_id = l.vendor_id
),
-- The platform's tax invoice for a positive commission, a credit note for a negative one, numbered
-- in this transaction from the per-year counter (a rolled-back batch gives its numbers back).
documents AS (
    SELECT c.id AS settlement_id, c.vendor_id, f.commission, f.gst_rate, f.cgst, f.sgst, f.igst, f.vendor_state,
           f.gstin, CASE WHEN f.commission > 0 THEN 'invoice' ELSE 'credit_note' END AS document_type,
           row_number() OVER (PARTITION BY f.commission > 0 ORDER BY c.vendor_id) AS n,
           count(*) OVER (PARTITION BY f.commission > 0) AS of_type
    FROM created AS c JOIN figures AS f ON f.vendor_id = c.vendor_id
    WHERE f.commission <> 0
),
counted AS (
    INSERT INTO tax_document_counters (document_type, financial_year, last_serial)
    SELECT document_type, :financial_year, count(*) FROM documents GROUP BY document_type ORDER BY document_type
    ON CONFLICT (document_type, financial_year)
    DO UPDATE SET last_serial = tax_document_counters.last_serial + EXCLUDED.last_serial
    RETURNING document_type, last_serial
),
numbered AS (
    INSERT INTO settlement_tax_documents (settlement_id, vendor_id, document_type, financial_year, serial, number,
                                          document_date, supplier_state, recipient_state, recipient_gstin,
                                          taxable_amount, gst_rate, cgst, sgst, igst)
    SELECT d.settlement_id, d.vendor_id, d.document_type, :financial_year, k.last_serial - d.of_type + d.n,
           CASE WHEN d.document_type = 'invoice' THEN 'CI' ELSE 'CN' END || :fy_code || '/'
               || lpad(CAST(k.last_serial - d.of_type + d.n AS text), 7, '0'),
           :period_end, (SELECT state_code FROM profile), d.vendor_state, d.gstin, d.commission, d.gst_rate,
           d.cgst, d.sgst, d.igst
    FROM documents AS d JOIN counted AS k ON k.document_type = d.document_type
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
