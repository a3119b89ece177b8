"""Payroll (docs/payroll.md): compensation and statutory data, the monthly run, and what it produces.

- `rates`: effective-dated statutory rates, slabs and policies (`statutory_rates`), and rounding
- `calculation`: one employee's month, from plain inputs (no database)
- `preflight`: what would make a run wrong, listed before computing
- `runs`: the run command, its batches, dry runs, approval
- `records`: compensation, adjustments, holidays, holds
- `documents`: the payslip PDF, the bank transfer file (salaries and settlements) and the run summary CSV
- `arrears`, `final_settlement`: backdated changes paid later; a leaver's settlement, approved and paid once
- `settlement_tax`: the exempt and taxable parts of gratuity and leave encashment, and the TDS on them
- `leave_ledger`: earned leave accrued, taken and carried forward by the company's dated policy
- `statements`: the year's Form 16 Part B and 24Q figures (salary and settlements paid)
"""
