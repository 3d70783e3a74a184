"""archcalc.output."""
