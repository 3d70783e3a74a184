"""archcalc.spec."""
