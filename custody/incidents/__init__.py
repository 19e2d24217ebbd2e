"""Breach detection, incidents, containment, escalation, notifications and reports."""
