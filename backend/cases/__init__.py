"""Case layouts (inbox/outbox/archive, study input/output) and, later, case workflows."""
