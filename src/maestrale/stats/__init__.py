"""Pure numpy/scipy statistics shared by training and monitoring: energy metrics, profiles, drift."""
