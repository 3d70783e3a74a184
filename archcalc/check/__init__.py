"""archcalc.check."""
