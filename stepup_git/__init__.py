"""stepup-git: step-up authentication for Git pushes."""

__version__ = "0.2.0"
