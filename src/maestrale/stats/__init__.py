"""Pure numpy statistics shared by training and monitoring: energy metrics (and, later, drift)."""
