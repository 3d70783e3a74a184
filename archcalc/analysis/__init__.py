"""archcalc.analysis."""
