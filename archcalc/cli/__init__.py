"""archcalc.cli."""
