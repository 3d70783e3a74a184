"""archcalc.ci: budgets, lints, baselines and CI reports for `archcalc check`."""
