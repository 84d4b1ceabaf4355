"""Local runner: the job state machine with stages run in-process."""
