"""What protects patients: de-identification and the audit trail.

Modules (one job each):
- deid_table: PS3.15 Table E.1-1 (Basic Profile actions), free-text rules and E.3.10-1 (safe
  private) as data.
- deid_keys: the local de-identification secret and remembered UID mappings (never exported).
- deid_text: the identifiers a dataset names, and the screen of kept free text for them.
- deid: PS3.15 Annex E de-identification of datasets and files; burned-in annotation risk.
- audit: the append-only, hash-chained audit trail (JSON lines) and its verification.
"""
