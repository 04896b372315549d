"""Ray wiring around the vidgru stages. No pipeline logic lives here, only where each stage runs."""
