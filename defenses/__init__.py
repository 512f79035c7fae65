"""Input-transform defenses and adversarial-training objectives (depends on torch and attacks)."""
