"""`python -m chaos mutants`: deliberate bugs the chaos scenarios must catch (issue 18)."""
