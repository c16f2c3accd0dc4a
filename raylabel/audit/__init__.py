"""`raylabel audit`: rank likely label errors in the seed before they are trained in."""

from raylabel.audit.schemas import ISSUES_SCHEMA, MULTILABEL_ISSUES_SCHEMA
from raylabel.audit.stage import (
    ISSUES_FILE,
    SUMMARY_FILE,
    AuditResult,
    audit,
    exclude_from_training,
    read_issues,
)

__all__ = [
    "ISSUES_FILE",
    "ISSUES_SCHEMA",
    "MULTILABEL_ISSUES_SCHEMA",
    "SUMMARY_FILE",
    "AuditResult",
    "audit",
    "exclude_from_training",
    "read_issues",
]
