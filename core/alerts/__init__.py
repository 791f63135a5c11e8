"""Alerts (docs/alerts.md): rules (pure parsing), evaluation (pure), the payload, the outbox and delivery."""
