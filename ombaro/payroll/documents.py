"""What a run produces for people: the payslip PDF (fpdf2), the bank transfer file and the run summary
(both CSV). The bank file is the only place bank details are decrypted (docs/payroll.md)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fpdf import FPDF
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ombaro.identity import crypto
from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import FinalSettlement, PayrollFailure, PayrollRun, SalaryRecordDetail
from ombaro.money import inr
from ombaro.payroll.calculation import ALLOWANCES, DEDUCTIONS, Period
from ombaro.payroll.errors import NothingToPay, RecordNotFound, RunNotFound

LABELS = {"basic": "Basic", "hra": "House rent allowance", "transport": "Transport allowance",
          "medical": "Medical allowance", "special": "Special allowance", "other": "Other allowance",
          "overtime": "Overtime", "bonus": "Bonus", "pf": "Provident fund", "esi": "ESI",
          "professional_tax": "Professional tax", "tds": "Income tax (TDS)", "loan_emi": "Loan EMI",
          "salary_advance": "Salary advance recovery", "incentive": "Incentive",
          "cooperative_dues": "Co-operative society dues", "arrears": "Arrears",
          "pf_arrears": "Provident fund on arrears", "arrears_recovery": "Recovery of arrears (backdated cut)",
          "pf_eps": "Employer EPS", "pf_epf": "Employer EPF"}
_IFSC = re.compile(r"^[A-Z]{4}0[A-Z0-9]{6}$")
_ACCOUNT = re.compile(r"^[0-9]{9,18}$")


def _latin(value: Any) -> str:
    # fpdf2's core fonts are Latin-1: anything else prints as '?', never fails the payslip.
    return str(value if value is not None else "").encode("latin-1", "replace").decode("latin-1")


def payslip_pdf(record: SalaryRecord, detail: SalaryRecordDetail | None, *, company: str = "OMBARO") -> bytes:
    period = Period(record.year, record.month)
    pdf = FPDF(format="A4")
    pdf.set_title(f"Payslip {period.label()}")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, _latin(f"{company} - Payslip for {period.start.strftime('%B %Y')}"), new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    who = [("Employee", detail.employee_name if detail else record.employee_id),
           ("Employee code", detail.employee_code if detail else ""),
           ("Department", detail.department if detail else ""), ("Designation", detail.designation if detail else ""),
           ("Days in month", detail.days_in_month if detail else period.days),
           ("Paid days", detail.paid_days if detail else ""), ("Loss-of-pay days", detail.lop_days if detail else ""),
           ("Status", record.status + (f" ({record.payment_reference})" if record.payment_reference else ""))]
    for label, value in who:
        pdf.cell(45, 6, _latin(label))
        pdf.cell(0, 6, _latin(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    allowances = record.allowances or {}
    earnings = [("basic", record.basic_salary), *((a, allowances.get(a, "0")) for a in ALLOWANCES),
                ("overtime", record.overtime_amount), ("bonus", record.bonus)]
    deductions = [(d, (record.deductions or {}).get(d, "0")) for d in DEDUCTIONS]
    pdf.set_font("helvetica", "B", 10)
    for heading in ("Earnings", "Amount (INR)", "Deductions", "Amount (INR)"):
        pdf.cell(47.5, 7, heading, border=1)
    pdf.ln()
    pdf.set_font("helvetica", size=10)
    for i in range(max(len(earnings), len(deductions))):
        for lines in (earnings, deductions):
            if i < len(lines):
                key, amount = lines[i]
                label = LABELS[key]
                if key == "overtime" and record.overtime_hours:
                    label += f" ({record.overtime_hours} h)"
                pdf.cell(47.5, 6, _latin(label), border=1)
                pdf.cell(47.5, 6, inr(amount), border=1, align="R")
            else:
                pdf.cell(95, 6, "", border=1)
        pdf.ln()
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(47.5, 7, "Gross pay", border=1)
    pdf.cell(47.5, 7, inr(record.gross_salary), border=1, align="R")
    pdf.cell(47.5, 7, "Total deductions", border=1)
    pdf.cell(47.5, 7, inr(record.total_deductions), border=1, align="R")
    pdf.ln(10)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 8, f"Net pay: INR {inr(record.net_salary)}", new_x="LMARGIN", new_y="NEXT")
    _arrears_lines(pdf, detail)
    pdf.set_font("helvetica", size=8)
    employer = detail.employer_contributions if detail else {}
    if employer:
        shares = ", ".join(f"{k.replace('_', ' ').upper()} {inr(v)}" for k, v in employer.items())
        pdf.multi_cell(0, 5, _latin(f"Employer contributions (not deducted from pay): {shares}"),
                       new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 5, "Each line is computed exactly and rounded once: earnings to the paisa (half up); "
                         "PF and TDS to the rupee, ESI to the next rupee; gross, total deductions and net are "
                         "sums of the lines above.",
                   new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def final_settlement_pdf(row: FinalSettlement, *, name: str, code: str, company: str = "OMBARO") -> bytes:
    """A leaver's full and final settlement statement: service, each amount and the rule it follows,
    and the last month's salary beside it (paid by the monthly run)."""
    pdf = FPDF(format="A4")
    pdf.set_title("Full and final settlement")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, _latin(f"{company} - Full and final settlement"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    salary: dict[str, Any] = (row.explanation or {}).get("salary", {})
    facts = [("Employee", name), ("Employee code", code), ("Last working day", row.last_working_date.isoformat()),
             ("Notice given on", row.resignation_date.isoformat() if row.resignation_date else "-"),
             ("Service", f"{row.service_years} years {row.service_days} days ({row.counted_years} counted)"),
             ("Last monthly basic + DA", inr(row.last_wage)),
             ("Salary to the last working day", f"{salary.get('month', '')}: net {inr(salary.get('net'))} "
                                                 f"({salary.get('status', '')}; paid by the monthly payroll run)")]
    for label, value in facts:
        pdf.cell(60, 6, _latin(label))
        pdf.cell(0, 6, _latin(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    lines = [("Gratuity (Payment of Gratuity Act s.4)", row.gratuity),
             (f"Leave encashment ({row.earned_leave_days} days)", row.leave_encashment),
             (f"Notice-pay recovery ({row.notice_shortfall_days} days short)", -row.notice_recovery),
             ("Income tax (TDS, s.192) on the taxable part", -row.tds)]
    for label, amount in lines:
        pdf.cell(120, 6, _latin(label), border=1)
        pdf.cell(60, 6, inr(amount), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(120, 7, "Settlement amount", border=1)
    pdf.cell(60, 7, inr(row.net_amount), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("helvetica", "B", 10)
    for heading in ("Income tax", "Exempt", "Taxable"):
        pdf.cell(60, 7, heading, border=1)
    pdf.ln()
    pdf.set_font("helvetica", size=10)
    section = str(((row.explanation or {}).get("tax", {}).get("gratuity") or {}).get("section", "10(10)(ii)"))
    for label, exempt, taxable in ((f"Gratuity (s.{section})", row.gratuity_exempt, row.gratuity_taxable),
                                   ("Leave encashment (s.10(10AA)(ii))", row.encashment_exempt,
                                    row.encashment_taxable)):
        pdf.cell(60, 6, _latin(label), border=1)
        pdf.cell(60, 6, inr(exempt), border=1, align="R")
        pdf.cell(60, 6, inr(taxable), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=8)
    pdf.multi_cell(0, 5, "Gratuity: 15 days' wages (last basic + DA / 26) per year of service, a part year over "
                         "six months counting as one, within the statutory ceiling; each amount computed exactly "
                         "and rounded once to the paisa.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _arrears_lines(pdf: FPDF, detail: SalaryRecordDetail | None) -> None:
    """Each arrears line: the component, the month it belongs to and the amount (negative: recovered)."""
    lines: list[dict[str, str]] = (detail.explanation or {}).get("arrears", []) if detail else []
    if not lines:
        return
    pdf.set_font("helvetica", "B", 10)
    for heading in ("Arrears for", "Component", "Amount (INR)"):
        pdf.cell(63, 7, heading, border=1)
    pdf.ln()
    pdf.set_font("helvetica", size=10)
    for line in lines:
        month = Period(*map(int, line["month"].split("-")))
        pdf.cell(63, 6, month.start.strftime("%B %Y"), border=1)
        pdf.cell(63, 6, _latin(LABELS.get(line["component"], line["component"])), border=1)
        pdf.cell(63, 6, inr(Decimal(line["amount"])), border=1, align="R")
        pdf.ln()
    pdf.ln(4)


# --- CSV ---------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A spreadsheet would run a text cell starting with = + - @ as a formula: quote it."""
    shown = "" if value is None else str(value)
    return "'" + shown if shown[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(shown) else shown


def _is_number(value: str) -> bool:
    try:
        Decimal(value)
    except ArithmeticError:
        return False
    return True


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text one line at a time (a response streams it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in (list(header), *([_cell(v) for v in r] for r in rows)):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


SUMMARY_HEADER = ("employee_code", "employee_name", "department", "designation", "status", "days_in_month",
                  "paid_days", "lop_days", "basic", *ALLOWANCES, "overtime_hours", "overtime", "bonus", "gross",
                  *DEDUCTIONS, "total_deductions", "net", "payment_reference", "notes", "failure")


def summary_rows(session: Session, run: PayrollRun, chunk: int = 1000) -> Iterator[list[Any]]:
    """The month's records (the caller's session decides which are visible), then the failures."""
    query = (select(SalaryRecord, SalaryRecordDetail)
             .outerjoin(SalaryRecordDetail, SalaryRecordDetail.salary_record_id == SalaryRecord.id)
             .where(SalaryRecord.year == run.year, SalaryRecord.month == run.month)
             .order_by(SalaryRecordDetail.employee_code, SalaryRecord.employee_id)
             .execution_options(yield_per=chunk))
    for record, detail in session.execute(query):
        allowances, deductions = record.allowances or {}, record.deductions or {}
        yield [detail.employee_code if detail else str(record.employee_id), detail.employee_name if detail else "",
               detail.department if detail else "", detail.designation if detail else "", record.status,
               detail.days_in_month if detail else "", detail.paid_days if detail else "",
               detail.lop_days if detail else "", record.basic_salary, *(allowances.get(a, "") for a in ALLOWANCES),
               record.overtime_hours, record.overtime_amount, record.bonus, record.gross_salary,
               *(deductions.get(d, "") for d in DEDUCTIONS), record.total_deductions, record.net_salary,
               record.payment_reference or "", record.notes or "", ""]
    failures = session.execute(select(PayrollFailure).where(PayrollFailure.run_id == run.id)
                               .order_by(PayrollFailure.employee_code).execution_options(yield_per=chunk)).scalars()
    blanks = [""] * (len(SUMMARY_HEADER) - 6)
    for failure in failures:
        yield [failure.employee_code or str(failure.employee_id), failure.employee_name or "", "", "", "failed",
               *blanks, f"{failure.error_type}: {failure.reason}"]


# --- the bank transfer file --------------------------------------------------------------------------------

BANK_HEADER = ("account_number", "ifsc", "amount", "reference", "beneficiary_name", "employee_code")


@dataclass
class BankFile:
    reference: str
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((Decimal(r[2]) for r in self.rows), Decimal(0))

    def csv(self) -> str:
        return "".join(csv_lines(BANK_HEADER, self.rows))


PAYABLE = text("""
SELECT s.id, s.employee_id, s.net_salary, s.payment_reference, e.employee_code, e.name, e.bank_details
FROM salary_records AS s JOIN employees AS e ON e.id = s.employee_id
WHERE s.id = ANY(:ids) AND s.year = :year AND s.month = :month AND s.status = :status
  AND (CAST(:prefix AS text) IS NULL OR s.payment_reference LIKE :prefix || '/%')
ORDER BY e.employee_code
""")


def _account(row: Any, keys: Mapping[str, bytes]) -> tuple[str, str] | str:
    """(account number, IFSC), or why this employee cannot be paid by transfer."""
    if not row.bank_details:
        return "no bank details on file"
    try:
        details = crypto.unseal(row.bank_details, keys=keys, context=f"employees.bank_details:{row.employee_id}")
    except crypto.SealError as exc:
        return f"bank details do not open: {exc}"
    account, ifsc = str(details.get("account_number", "")), str(details.get("ifsc", ""))
    if not _ACCOUNT.match(account) or not _IFSC.match(ifsc):
        return "bank details incomplete (account number or IFSC)"
    return account, ifsc


def _transfers(rows: Iterable[Any], amounts: Iterable[Decimal], keys: Mapping[str, bytes],
               bank_file: BankFile) -> dict[uuid.UUID, tuple[str, str]]:
    """(account number, IFSC) by row id for the rows that can be paid by transfer; the others go to
    `bank_file.skipped` with the reason."""
    accounts: dict[uuid.UUID, tuple[str, str]] = {}
    for row, amount in zip(rows, amounts, strict=True):
        account = "net pay is zero" if amount <= 0 else _account(row, keys)
        if isinstance(account, str):
            bank_file.skipped.append({"employee_code": row.employee_code, "reason": account})
        else:
            accounts[row.id] = account
    return accounts


def _file_again(reference: str, rows: Sequence[Any], amounts: Sequence[Decimal],
                keys: Mapping[str, bytes]) -> BankFile:
    """An earlier file rebuilt from the rows it paid, each with the reference it was paid under."""
    bank_file = BankFile(reference)
    for row, amount in zip(rows, amounts, strict=True):
        account = _account(row, keys)
        if isinstance(account, str):
            bank_file.skipped.append({"employee_code": row.employee_code, "reason": account})
            continue
        bank_file.rows.append((account[0], account[1], f"{amount:.2f}", row.payment_reference, row.name,
                               row.employee_code))
    return bank_file


def _pay(owner: Session, bank_file: BankFile, rows: Sequence[Any], amounts: Sequence[Decimal],
         keys: Mapping[str, bytes], mark_paid: Any, paid_on: dt.date, what: str) -> None:
    """Mark paid the rows that can be paid by transfer (`mark_paid` returns the ids it turned paid)
    and put exactly those in the file; NothingToPay when none can be."""
    accounts = _transfers(rows, list(amounts), keys, bank_file)
    paid = set(owner.scalars(mark_paid, {"ids": list(accounts), "reference": bank_file.reference, "paid_on": paid_on}))
    if not paid:
        raise NothingToPay(f"none of the {len(rows)} {what} can be paid by transfer: "
                           + "; ".join(f"{s['employee_code']}: {s['reason']}" for s in bank_file.skipped[:10]))
    bank_file.rows = [(*accounts[r.id], f"{amount:.2f}", f"{bank_file.reference}/{r.employee_code}", r.name,
                       r.employee_code) for r, amount in zip(rows, amounts, strict=True) if r.id in paid]


MARK_PAID = text("""
UPDATE salary_records AS s
SET status = 'paid', payment_date = :paid_on, payment_method = 'bank_transfer',
    payment_reference = :reference || '/' || e.employee_code, updated_at = now()
FROM employees AS e
WHERE e.id = s.employee_id AND s.id = ANY(:ids) AND s.status = 'processed'
RETURNING s.id
""")


def pay_by_bank_file(owner: Session, *, run_id: uuid.UUID, record_ids: list[uuid.UUID], keys: Mapping[str, bytes],
                     paid_on: dt.date, generated_by: uuid.UUID | None) -> BankFile:
    """A new bank file for the month's processed records among `record_ids` (those the caller may see),
    which become paid in the same transaction: a record is in one file only, so no one is paid twice.
    Runs on the owner's session: the exporting roles may neither read bank details nor mark records
    paid under their own policies. Records without usable bank details stay processed and are listed."""
    run = owner.scalars(select(PayrollRun).where(PayrollRun.id == run_id).with_for_update()).one_or_none()
    if run is None:
        raise RunNotFound(f"no payroll run {run_id}")
    rows = owner.execute(PAYABLE, {"ids": record_ids, "year": run.year, "month": run.month, "status": "processed",
                                   "prefix": None}).all()
    if not rows:
        raise NothingToPay(f"no approved (processed) salary of {run.year}-{run.month:02d} awaits payment")
    bank_file = BankFile(f"SAL{run.year}{run.month:02d}-{len(run.bank_files) + 1:02d}")
    # Only the records this statement turns paid go in the file (one put on hold meanwhile does not).
    _pay(owner, bank_file, rows, [r.net_salary for r in rows], keys, MARK_PAID, paid_on, "processed salaries")
    entry = {"reference": bank_file.reference, "generated_at": dt.datetime.now(dt.UTC).isoformat(),
             "generated_by": str(generated_by) if generated_by else None, "count": len(bank_file.rows),
             "total": str(bank_file.total), "skipped": bank_file.skipped}
    # The run row is locked above, so appending in Python loses no concurrent entry.
    owner.execute(update(PayrollRun).where(PayrollRun.id == run_id).values(
        bank_files=[*run.bank_files, entry], updated_at=func.now()))
    return bank_file


def bank_file_again(owner: Session, *, run_id: uuid.UUID, reference: str, record_ids: list[uuid.UUID],
                    keys: Mapping[str, bytes]) -> BankFile:
    """An earlier bank file, rebuilt from the records it paid (nothing changes)."""
    run = owner.get(PayrollRun, run_id)
    if run is None or reference not in {f.get("reference") for f in run.bank_files}:
        raise RunNotFound(f"no bank file {reference} for payroll run {run_id}")
    rows = owner.execute(PAYABLE, {"ids": record_ids, "year": run.year, "month": run.month, "status": "paid",
                                   "prefix": reference}).all()
    return _file_again(reference, rows, [r.net_salary for r in rows], keys)


# --- full and final settlements: the same file, paid once ----------------------------------------------------

SETTLEMENTS_PAYABLE = text("""
SELECT f.id, f.employee_id, f.net_amount, f.payment_reference, e.employee_code, e.name, e.bank_details
FROM final_settlements AS f JOIN employees AS e ON e.id = f.employee_id
WHERE f.id = ANY(:ids) AND f.status = :status
  AND (CAST(:prefix AS text) IS NULL OR f.payment_reference LIKE :prefix || '/%')
ORDER BY e.employee_code
""")

MARK_SETTLEMENTS_PAID = text("""
UPDATE final_settlements AS f
SET status = 'paid', payment_date = :paid_on, payment_reference = :reference || '/' || e.employee_code,
    updated_at = now()
FROM employees AS e
WHERE e.id = f.employee_id AND f.id = ANY(:ids) AND f.status = 'approved'
RETURNING f.id
""")

# One settlement bank file at a time: its number is the count of the day's earlier files plus one.
SETTLEMENT_FILES_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('final_settlements.bank_file'))")
SETTLEMENT_FILES_OF_DAY = text("""
SELECT count(DISTINCT split_part(payment_reference, '/', 1)) FROM final_settlements
WHERE payment_reference LIKE :day || '-%'
""")


def pay_settlements_by_bank_file(owner: Session, *, settlement_ids: list[uuid.UUID], keys: Mapping[str, bytes],
                                 paid_on: dt.date) -> BankFile:
    """A bank file (the payroll format) for the approved settlements among `settlement_ids` (those the
    caller may see), which become paid in the same transaction: the UPDATE flips only approved rows, and
    only the rows it flipped are in the file, so a settlement is in one file only. Reference
    `FNFyyyymmdd-nn`. Owner session, as the payroll bank file. A settlement owed by the leaver (net
    not positive) or without usable bank details stays approved and is listed in `skipped`."""
    owner.execute(SETTLEMENT_FILES_LOCK)
    rows = owner.execute(SETTLEMENTS_PAYABLE, {"ids": settlement_ids, "status": "approved", "prefix": None}).all()
    if not rows:
        raise NothingToPay("no approved full and final settlement awaits payment")
    day = f"FNF{paid_on:%Y%m%d}"
    bank_file = BankFile(f"{day}-{(owner.scalar(SETTLEMENT_FILES_OF_DAY, {'day': day}) or 0) + 1:02d}")
    _pay(owner, bank_file, rows, [r.net_amount for r in rows], keys, MARK_SETTLEMENTS_PAID, paid_on,
         "approved settlements")
    return bank_file


def settlement_bank_file_again(owner: Session, *, reference: str, settlement_ids: list[uuid.UUID],
                               keys: Mapping[str, bytes]) -> BankFile:
    """An earlier settlement bank file, rebuilt from the settlements it paid (nothing changes)."""
    rows = owner.execute(SETTLEMENTS_PAYABLE, {"ids": settlement_ids, "status": "paid", "prefix": reference}).all()
    if not rows:
        raise RecordNotFound(f"no settlement bank file {reference}")
    return _file_again(reference, rows, [r.net_amount for r in rows], keys)
