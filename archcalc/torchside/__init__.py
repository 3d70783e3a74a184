"""archcalc.torchside."""
