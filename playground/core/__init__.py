"""The model and what it learns from: tasks and vocabularies, the Seq2Seq contract, the one LSTM recurrence,
teacher-forcing schedules, the validated config and devices. Depends on nothing else in the package."""
