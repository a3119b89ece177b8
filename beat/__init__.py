"""The scheduler process: one leader at a time fires the schedules kept in the database."""
