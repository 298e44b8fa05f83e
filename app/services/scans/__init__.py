"""Antivirus scans: uploads pre-checked and stored (uploads), scanned by clamd (clamav,
verdicts), rescanned when the signatures change (signatures), quarantine actions (quarantine)."""
